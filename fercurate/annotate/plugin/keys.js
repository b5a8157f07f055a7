/* fercurate occlusion labelling: the keyboard half of the "Occlusion labelling" panel.
   A plain script (no build step, no imports): it uses only the globals the FiftyOne App exposes
   (window.React, window.__fop__ = @fiftyone/plugins, window.__foo__ = @fiftyone/operators).
   It registers the component "OcclusionKeys", which the Python panel renders with
   panel.view("keys", types.View(component="OcclusionKeys", on_key=self.on_key, keys=[...])); the App
   passes that view's JSON as props.schema.view, where on_key is the uri "<panel uri>#on_key".
   One capture-phase listener on window claims the labelling keys (the App's own shortcuts never see
   them; other keys, e.g. the arrows, still reach the App) and sends them to the panel one at a
   time: a key is sent only when the previous one has been handled, so fast typing is never reordered.
   Another key (a letter or digit that labels nothing) is left to the App, and the panel's key line
   says which keys label.
   Around the labelling: when a face opens with the panel only a tab beside the face's own (the App's
   default), the face's view is split once, as the "Split horizontally" button does, so the panel
   sits beside the face (the browser then keeps that layout for this address); FiftyOne's "Explore
   Enterprise" pop-up, which covers the page and takes the first click, is marked seen (the App's own
   localStorage key) and dismissed; and when the App server stops (the launcher was stopped), a
   notice over the page says the session ended and where its labels were written, instead of
   leaving only FiftyOne's "not connected" page. */
(function () {
  var React = window.React;
  var fop = window.__fop__;
  var foo = window.__foo__;
  var h = React.createElement;
  var DEFAULT_KEYS = ["1", "2", "3", "4", "5", "0", "n", "Enter", "z"];
  var ENTERPRISE_SEEN = "fiftyone-enterprise-tooltip-seen"; // the App's own key for its pop-up
  var mounted = []; // the most recently mounted component gets the keys (grid and modal both open)
  var queue = [];
  var busy = false;
  var session = { file: null, pending: 0, written: 0, error: null }; // as the panel last rendered it

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function pump() {
    if (busy || !queue.length) return;
    var job = queue.shift();
    busy = true;
    var done = false;
    var finish = function () {
      if (done) return;
      done = true;
      busy = false;
      window.__occlusionKeysHandled = (window.__occlusionKeysHandled || 0) + 1;
      pump();
    };
    setTimeout(finish, 15000); // a lost reply must not block the keyboard for good
    job.trigger(job.uri, { key: job.key }, false, finish);
  }

  window.addEventListener(
    "keydown",
    function (e) {
      var cur = mounted.length ? mounted[mounted.length - 1].current : null;
      if (!cur || !cur.uri || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
      if (cur.keys.indexOf(e.key) < 0) {
        if (/^[A-Za-z0-9]$/.test(e.key) && cur.wrongKey) cur.wrongKey(e.key); // left to the App
        return;
      }
      e.preventDefault();
      e.stopImmediatePropagation();
      if (e.repeat) return;
      if (cur.wrongKey) cur.wrongKey(null);
      window.__occlusionKeysSent = (window.__occlusionKeysSent || 0) + 1;
      queue.push({ trigger: cur.trigger, uri: cur.uri, key: e.key });
      pump();
    },
    true
  );

  function OcclusionKeys(props) {
    var view = (props.schema && props.schema.view) || {};
    var keys = view.keys || DEFAULT_KEYS;
    var wrong = React.useState(null);
    var latest = React.useRef(null);
    latest.current = { trigger: foo.useTriggerPanelEvent(), uri: view.on_key, keys: keys, wrongKey: wrong[1] };
    session.file = view.file || session.file;
    session.pending = view.pending || 0;
    session.written = view.written || 0;
    session.error = view.error || null;
    React.useEffect(function () {
      mounted.push(latest);
      return function () {
        var i = mounted.indexOf(latest);
        if (i >= 0) mounted.splice(i, 1);
      };
    }, []);
    var help = view.help || "Keys: " + keys.join(" ");
    if (wrong[0] !== null) {
      return h("div", { "data-cy": "occlusion-keys", "data-wrong-key": wrong[0],
                        style: { fontSize: "0.8rem", color: "#e8a33d", fontWeight: 600 } },
               "'" + wrong[0] + "' is not a labelling key. " + help);
    }
    return h("div", { "data-cy": "occlusion-keys", style: { fontSize: "0.8rem", opacity: 0.8 } }, help);
  }

  fop.registerComponent({
    name: "OcclusionKeys",
    label: "OcclusionKeys",
    component: OcclusionKeys,
    type: fop.PluginComponentType.Component,
    activator: function () { return true; },
  });

  // --- the panel beside the face, the first time a face opens ----------------------------------
  var beside = setInterval(function () {
    var modal = document.querySelector('[data-cy="modal"]');
    if (!modal) return;
    if (modal.querySelector('[data-cy="occlusion-keys"]')) { clearInterval(beside); return; } // shown already
    var tab = modal.querySelector('[data-cy="panel-tab-occlusion_labeller"]');
    var split = modal.querySelector('[data-cy="panel-container"] [title="Split horizontally"]');
    if (tab && split) { split.click(); clearInterval(beside); }
  }, 250);

  // --- FiftyOne's Enterprise pop-up: seen, and dismissed if it is showing ------------------------
  try { window.localStorage.setItem(ENTERPRISE_SEEN, "true"); } catch (err) { /* storage off: dismiss below */ }
  var tries = 0;
  var dismiss = setInterval(function () {
    tries += 1;
    var buttons = document.querySelectorAll(".MuiPopover-root button");
    for (var i = 0; i < buttons.length; i++) {
      if (buttons[i].textContent.trim() === "Dismiss") { buttons[i].click(); clearInterval(dismiss); return; }
    }
    if (tries > 40) clearInterval(dismiss);
  }, 250);

  // --- the end of the session, shown in the page --------------------------------------------------
  var failures = 0;
  var ended = false;
  function showEnded() {
    ended = true;
    var box = document.createElement("div");
    box.setAttribute("data-cy", "occlusion-session-ended");
    box.style.cssText = "position:fixed;inset:0;z-index:2147483647;display:flex;align-items:center;" +
      "justify-content:center;background:rgba(20,20,20,0.92);color:#fff;font:16px/1.5 sans-serif";
    var when = new Date().toLocaleTimeString();
    var where = session.file ? " to " + session.file : "";
    var text = "This labelling session has ended: its App server stopped at " + when +
      " (the launcher was stopped). Labels were written" + where + " as you made them (" +
      session.written + " this session)" +
      (session.pending ? "; the last " + session.pending + " were still queued and are written as the App stops" : "") +
      (session.error ? ". Not saved at the last look: " + session.error : "") +
      ". 'fercurate annotate status' counts them. To go on, run 'fercurate annotate launch' again and reload this page.";
    var inner = document.createElement("div");
    inner.style.cssText = "max-width:44rem;padding:2rem;border:1px solid #666;border-radius:8px;background:#222";
    var title = document.createElement("div");
    title.style.cssText = "font-size:1.3rem;font-weight:600;margin-bottom:0.8rem";
    title.textContent = "Labelling session ended";
    var body = document.createElement("div");
    body.textContent = text;
    inner.appendChild(title);
    inner.appendChild(body);
    box.appendChild(inner);
    document.body.appendChild(box);
  }
  var watch = setInterval(function () {
    if (ended) { clearInterval(watch); return; }
    fetch("/fiftyone", { cache: "no-store" }).then(function (r) {
      failures = r.ok ? 0 : failures + 1;
    }, function () { failures += 1; }).then(function () {
      if (failures >= 2 && !ended) { clearInterval(watch); showEnded(); }
    });
  }, 1000);
})();
