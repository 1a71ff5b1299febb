//! `/`: the last 24 hours at a glance — deliveries per hour (succeeded and failed, drawn
//! server-side as SVG), webhooks failing now, URLs whose circuit is open; at first, where
//! to start (a source for events in, a webhook for events out).

use axum::{extract::State, http::StatusCode};
use minijinja::{context, Value as Ctx};

use super::{base_context, render, webhooks::day_ago, Person};
use super::{OrPage, PageResult};
use crate::http::AppState;

const HOUR: i64 = 3_600_000_000;
const CHART_W: i64 = 720;
const CHART_H: i64 = 160;
/// The overview names at most this many failing webhooks (then how many more).
const SHOWN_FAILING: usize = 20;

/// Bars for the 24 hours ending now, from `(hour, succeeded, failed)` counts.
pub fn bars(counts: &[(i64, u64, u64)], now_micros: i64) -> (Vec<Ctx>, u64) {
    let first_hour = (now_micros / HOUR - 23) * HOUR;
    let mut ok = [0u64; 24];
    let mut failed = [0u64; 24];
    for (hour, succeeded, lost) in counts {
        let i = (hour - first_hour) / HOUR;
        if (0..24).contains(&i) {
            ok[i as usize] += succeeded;
            failed[i as usize] += lost;
        }
    }
    let max = (0..24).map(|i| ok[i] + failed[i]).max().unwrap_or(0).max(1);
    let width = CHART_W / 24;
    let bars = (0..24)
        .map(|i| {
            let h = |n: u64| (n as i64 * (CHART_H - 20)) / max as i64;
            let (ok_h, failed_h) = (h(ok[i]), h(failed[i]));
            let hour =
                crate::domain::Timestamp::from_micros(first_hour + i as i64 * HOUR).to_rfc3339();
            context! {
                x => i as i64 * width + 2,
                w => width - 4,
                ok_y => CHART_H - ok_h,
                ok_h => ok_h,
                failed_y => CHART_H - ok_h - failed_h,
                failed_h => failed_h,
                ok => ok[i],
                failed => failed[i],
                label => hour[11..16].to_owned(),
                tick => i % 4 == 0,
            }
        })
        .collect();
    (bars, max)
}

pub async fn show(State(state): State<AppState>, person: Person) -> PageResult {
    let org = person.caller().organization_id().to_owned();
    let since = day_ago();
    let counts = state
        .store
        .hourly_deliveries(&org, since)
        .await
        .or_page(person.caller())?;
    let total_ok: u64 = counts.iter().map(|c| c.1).sum();
    let total_failed: u64 = counts.iter().map(|c| c.2).sum();
    let (bars, max) = bars(&counts, crate::domain::Timestamp::now().as_micros());
    let snapshot = state
        .catalog
        .webhooks(&org)
        .await
        .or_page(person.caller())?;
    // Failing now: deliveries failed for good in the last hour, and none succeeded.
    let hour_ago =
        crate::domain::Timestamp::from_micros(crate::domain::Timestamp::now().as_micros() - HOUR);
    let recent = state
        .store
        .webhook_counts(&org, hour_ago)
        .await
        .or_page(person.caller())?;
    let mut failing: Vec<(&str, &str, u64)> = snapshot
        .webhooks
        .iter()
        .filter_map(|c| {
            let (ok, failed) = recent.get(&c.webhook.id)?;
            (*failed > 0 && *ok == 0).then_some((
                c.webhook.id.as_str(),
                c.webhook.spec.name.as_str(),
                *failed,
            ))
        })
        .collect();
    failing.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(b.1)));
    let failing_total = failing.len();
    let failing: Vec<Ctx> = failing
        .into_iter()
        .take(SHOWN_FAILING)
        .map(|(id, name, failed)| context! { id => id, name => name, failed => failed })
        .collect();
    let urls: Vec<&str> = snapshot
        .webhooks
        .iter()
        .flat_map(|c| &c.webhook.spec.urls)
        .map(|u| u.url.as_str())
        .collect();
    let open = super::open_urls(&state, &urls)
        .await
        .or_page(person.caller())?;
    let open_urls: Vec<Ctx> = open
        .iter()
        .map(|url| {
            let hooks: Vec<Ctx> = snapshot
                .webhooks
                .iter()
                .filter(|c| c.webhook.spec.urls.iter().any(|u| &u.url == url))
                .map(|c| context! { id => c.webhook.id.as_str(), name => &c.webhook.spec.name })
                .collect();
            context! { url => crate::domain::webhook::mask_url(url), hooks => hooks }
        })
        .collect();
    // The first-start card offers connecting a source until there is one.
    let sources = if snapshot.webhooks.is_empty() {
        let sources = state.store.list_sources(&org).await;
        sources.or_page(person.caller())?.len()
    } else {
        0
    };
    Ok(render(
        StatusCode::OK,
        "overview.html",
        base_context(Some(person.caller())),
        context! {
            title => "Overview",
            nav => "overview",
            bars => bars,
            max => max,
            chart_w => CHART_W,
            chart_h => CHART_H,
            total_ok => total_ok,
            total_failed => total_failed,
            failing => failing,
            failing_more => failing_total.saturating_sub(SHOWN_FAILING),
            open_urls => open_urls,
            webhooks => snapshot.webhooks.len(),
            sources => sources,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_cover_the_last_24_hours_scaled_to_the_busiest() {
        let now = 1_000 * HOUR + HOUR / 2;
        let counts = [
            (1_000 * HOUR, 30, 10),
            (977 * HOUR, 5, 0),
            (976 * HOUR, 99, 0), // 24 hours before: outside
        ];
        let (bars, max) = bars(&counts, now);
        assert_eq!(bars.len(), 24);
        assert_eq!(max, 40);
        let last = &bars[23];
        assert_eq!(last.get_attr("ok").unwrap().as_usize(), Some(30));
        assert_eq!(last.get_attr("failed").unwrap().as_usize(), Some(10));
        let full = CHART_H - 20;
        let ok_h = last.get_attr("ok_h").unwrap().as_i64().unwrap();
        let failed_h = last.get_attr("failed_h").unwrap().as_i64().unwrap();
        assert_eq!(ok_h + failed_h, full, "the busiest hour fills the chart");
        assert_eq!(bars[0].get_attr("ok").unwrap().as_usize(), Some(5));
    }
}
