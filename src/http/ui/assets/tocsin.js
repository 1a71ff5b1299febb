// tocsin's pages: the few things that need a script. Served as a file (the Content
// Security Policy allows no inline script); everything works through delegated events.
(function () {
  "use strict";

  // Rows and filter groups are cloned from <template> elements. Indices only need to be
  // unique: the server reads rows in index order and ignores gaps.
  var counter = 1000;
  function fromTemplate(id, replacements) {
    var tpl = document.getElementById(id);
    if (!tpl) return null;
    var html = tpl.innerHTML;
    Object.keys(replacements).forEach(function (key) {
      html = html.split(key).join(replacements[key]);
    });
    var holder = document.createElement("div");
    holder.innerHTML = html;
    return holder;
  }
  function appendAll(holder, target) {
    var first = null;
    while (holder.firstChild) {
      var node = holder.firstChild;
      target.appendChild(node);
      if (!first && node.nodeType === 1) first = node;
    }
    return first;
  }
  function focusFirst(el) {
    if (!el) return;
    var f = el.querySelector("input, select, textarea");
    if (f) f.focus();
  }

  function nextIndex(el) {
    var n = parseInt(el.dataset.next || "0", 10);
    el.dataset.next = String(n + 1);
    return n;
  }

  var PICKABLE = ["service", "alert_source", "team"];

  // Shows the inputs a condition needs for its field and operator.
  function updateCondition(row) {
    var lhs = row.querySelector(".f-lhs");
    var op = row.querySelector(".f-op");
    var other = row.querySelector(".f-other");
    var pick = row.querySelector(".f-pick");
    var text = row.querySelector(".f-text");
    if (!lhs || !op) return;
    var field = lhs.value;
    var noValue = op.value === "exists" || op.value === "not_exists";
    var list = op.value === "in" || op.value === "not_in";
    var pickable = PICKABLE.indexOf(field) >= 0;
    other.hidden = field !== "other";
    if (pickable && pick.dataset.kind !== field) {
      var holder = fromTemplate("opts-" + field, {});
      if (holder) {
        var chosen = pick.value;
        pick.innerHTML = holder.innerHTML;
        pick.value = chosen;
      }
      pick.dataset.kind = field;
    }
    pick.hidden = !pickable || noValue;
    var typed = pick.value === "__typed__";
    text.hidden = noValue || (pickable && !list && !typed);
    if (typed && !list) text.setAttribute("placeholder", "the id, as events name it");
    text.setAttribute("aria-label", list ? "Values, comma-separated" : "Value");
  }

  document.addEventListener("change", function (e) {
    var row = e.target.closest && e.target.closest(".fcond");
    if (row && (e.target.classList.contains("f-lhs") || e.target.classList.contains("f-op") || e.target.classList.contains("f-pick"))) {
      updateCondition(row);
    }
    var typed = e.target.dataset && e.target.dataset.confirmValue;
    if (typed !== undefined) checkTyped(e.target);
  });
  document.addEventListener("input", function (e) {
    if (e.target.dataset && e.target.dataset.confirmValue !== undefined) checkTyped(e.target);
  });

  function checkTyped(input) {
    var button = document.querySelector('[data-needs-confirm="' + input.id + '"]');
    if (button) button.disabled = input.value.trim() !== input.dataset.confirmValue.trim();
  }

  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target.closest("button") : null;
    if (!t) return;
    if (t.dataset.addRow) {
      var into = document.getElementById(t.dataset.into);
      var holder = fromTemplate(t.dataset.addRow, { "__N__": String(nextIndex(into)) });
      focusFirst(appendAll(holder, into));
    } else if (t.hasAttribute("data-add-condition") || t.hasAttribute("data-add-group")) {
      var group = t.closest(".fgroup");
      var path = group.dataset.path + ".conditions[" + nextIndex(group) + "]";
      var kind = t.hasAttribute("data-add-group") ? "tpl-group" : "tpl-condition";
      var added = appendAll(fromTemplate(kind, { "__PATH__": path }), group.querySelector(":scope > .fconds"));
      focusFirst(added);
    } else if (t.dataset.remove) {
      var gone = t.closest(t.dataset.remove);
      if (gone) gone.remove();
    } else if (t.dataset.copy) {
      var source = document.getElementById(t.dataset.copy);
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent).then(function () {
          t.textContent = "Copied";
          setTimeout(function () { t.textContent = "Copy"; }, 1500);
        });
      }
    }
  });

  document.addEventListener("submit", function (e) {
    var message = e.target.dataset && e.target.dataset.confirmMessage;
    if (message && !window.confirm(message)) e.preventDefault();
  });

  // A Logs row whose delivery finished while shown (the poller swapped its state chip,
  // marked data-final): an expanded row's attempts are fetched again in place, so what it
  // shows agrees with its summary; a collapsed one fetches them when next opened.
  function refreshFinished() {
    document.querySelectorAll(".log-row .chip[data-final]").forEach(function (chip) {
      chip.removeAttribute("data-final");
      var row = chip.closest(".log-row");
      var details = row && row.querySelector("details");
      var detail = row && row.querySelector(".detail");
      if (!details || !detail || !window.htmx) return;
      var url = details.getAttribute("hx-get");
      if (details.open) {
        window.htmx.ajax("GET", url, { target: detail, swap: "innerHTML" });
      } else {
        detail.innerHTML = '<p class="muted">Loading…</p>';
        details.addEventListener("toggle", function () {
          if (details.open) window.htmx.ajax("GET", url, { target: detail, swap: "innerHTML" });
        }, { once: true });
      }
    });
  }
  document.addEventListener("htmx:afterSettle", refreshFinished);

  // A service, alert source or team added by name joins the builder's value lists.
  document.addEventListener("htmx:afterSettle", function (e) {
    var added = e.target.querySelector && e.target.querySelector("[data-added-kind]");
    if (!added) return;
    var kind = added.dataset.addedKind, id = added.dataset.addedId, name = added.dataset.addedName;
    var lists = Array.prototype.slice.call(document.querySelectorAll('.f-pick[data-kind="' + kind + '"]'));
    var tpl = document.getElementById("opts-" + kind);
    if (tpl) lists.push(tpl.content);
    lists.forEach(function (list) {
      var option = Array.prototype.find.call(list.querySelectorAll("option"), function (o) { return o.value === id; });
      if (!option) {
        option = document.createElement("option");
        option.value = id;
        list.insertBefore(option, list.querySelector('option[value="__typed__"]'));
      }
      option.textContent = name;
    });
  });

  function init(root) {
    root.querySelectorAll(".fcond").forEach(updateCondition);
    root.querySelectorAll("[data-confirm-value]").forEach(checkTyped);
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
})();
