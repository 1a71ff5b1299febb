//! Built-in templates that turn an incident event into the incoming-webhook message of a
//! chat tool, so a webhook can point straight at Slack, Microsoft Teams or Discord.

pub struct Preset {
    pub slug: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub template: &'static str,
}

/// Shared by the presets: the colour of each status, and the title line.
const HEAD: &str = r##"{%- set colors = {"triggered": "D92D20", "acknowledged": "F79009", "resolved": "12B76A", "reassigned": "7A5AF8"} -%}
{%- set color = colors[incident.status] if incident.status in colors else "667085" -%}
{%- set title = "[" ~ (incident.status or "unknown") | upper ~ "] " ~ (incident.service.name or incident.service.id or "incident") ~ ": " ~ (incident.message or "") -%}
"##;

pub const PRESETS: &[Preset] = &[
    Preset {
        slug: "slack",
        name: "Slack",
        description: "A Slack incoming-webhook message: the title as text, and a coloured attachment with the message and a link to the incident.",
        template: r##"{
  "text": {{ title }},
  "attachments": [{
    "color": {{ "#" ~ color }},
    "title": {{ title }},
    {% if incident.url %}"title_link": {{ incident.url }},{% endif %}
    "text": {{ incident.description or incident.message or "" }},
    "fields": [
      {"title": "Status", "value": {{ incident.status or "" }}, "short": true},
      {"title": "Service", "value": {{ incident.service.name or incident.service.id or "" }}, "short": true}
    ],
    "footer": {{ "tocsin · " ~ event.type }}
  }]
}"##,
    },
    Preset {
        slug: "msteams",
        name: "Microsoft Teams",
        description: "A Teams connector MessageCard with a status colour, the message, facts and an Open incident button.",
        template: r##"{
  "@type": "MessageCard",
  "@context": "https://schema.org/extensions",
  "themeColor": {{ color }},
  "summary": {{ title }},
  "title": {{ title }},
  "text": {{ incident.description or incident.message or "" }},
  "sections": [{"facts": [
    {"name": "Status", "value": {{ incident.status or "" }}},
    {"name": "Service", "value": {{ incident.service.name or incident.service.id or "" }}},
    {"name": "Event", "value": {{ event.type }}}
  ]}]
  {%- if incident.url %},
  "potentialAction": [{"@type": "OpenUri", "name": "Open incident", "targets": [{"os": "default", "uri": {{ incident.url }}}]}]
  {%- endif %}
}"##,
    },
    Preset {
        slug: "discord",
        name: "Discord",
        description: "A Discord webhook message with a coloured embed holding the message and a link to the incident.",
        template: r##"{
  "content": {{ title }},
  "embeds": [{
    "title": {{ title }},
    {% if incident.url %}"url": {{ incident.url }},{% endif %}
    "description": {{ incident.description or incident.message or "" }},
    "color": {{ {"D92D20": 14232864, "F79009": 16224265, "12B76A": 1226602, "7A5AF8": 8018680, "667085": 6713477}[color] }},
    "fields": [
      {"name": "Status", "value": {{ incident.status or "-" }}, "inline": true},
      {"name": "Service", "value": {{ incident.service.name or incident.service.id or "-" }}, "inline": true}
    ]
  }]
}"##,
    },
];

pub fn preset(slug: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.slug == slug)
}

/// The preset's full template text.
pub fn source(preset: &Preset) -> String {
    format!("{HEAD}{}", preset.template)
}
