/* fercurate occlusion labelling: the keyboard half of the "Occlusion labelling" panel.
   A plain script (no build step, no imports): it uses only the globals the FiftyOne App exposes
   (window.React, window.__fop__ = @fiftyone/plugins, window.__foo__ = @fiftyone/operators).
   It registers the component "OcclusionKeys", which the Python panel renders with
   panel.view("keys", types.View(component="OcclusionKeys", on_key=self.on_key, keys=[...])); the App
   passes that view's JSON as props.schema.view, where on_key is the uri "<panel uri>#on_key".
   One capture-phase listener on window claims the labelling keys (the App's own shortcuts never see
   them; other keys, e.g. the arrows, still reach the App) and sends them to the panel one at a
   time: a key is sent only when the previous one has been handled, so fast typing is never reordered. */
(function () {
  var React = window.React;
  var fop = window.__fop__;
  var foo = window.__foo__;
  var h = React.createElement;
  var DEFAULT_KEYS = ["1", "2", "3", "4", "5", "0", "n", "Enter", "z"];
  var mounted = []; // the most recently mounted component gets the keys (grid and modal both open)
  var queue = [];
  var busy = false;

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
      if (cur.keys.indexOf(e.key) < 0) return;
      e.preventDefault();
      e.stopImmediatePropagation();
      if (e.repeat) return;
      window.__occlusionKeysSent = (window.__occlusionKeysSent || 0) + 1;
      queue.push({ trigger: cur.trigger, uri: cur.uri, key: e.key });
      pump();
    },
    true
  );

  function OcclusionKeys(props) {
    var view = (props.schema && props.schema.view) || {};
    var latest = React.useRef(null);
    latest.current = { trigger: foo.useTriggerPanelEvent(), uri: view.on_key, keys: view.keys || DEFAULT_KEYS };
    React.useEffect(function () {
      mounted.push(latest);
      return function () {
        var i = mounted.indexOf(latest);
        if (i >= 0) mounted.splice(i, 1);
      };
    }, []);
    return h("div", { "data-cy": "occlusion-keys", style: { fontSize: "0.8rem", opacity: 0.8 } },
             view.help || "Keys: " + (view.keys || DEFAULT_KEYS).join(" "));
  }

  fop.registerComponent({
    name: "OcclusionKeys",
    label: "OcclusionKeys",
    component: OcclusionKeys,
    type: fop.PluginComponentType.Component,
    activator: function () { return true; },
  });
})();
