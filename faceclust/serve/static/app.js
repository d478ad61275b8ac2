// faceclust serve: keyboard shortcuts, face selection and name completion. Every action is a
// plain form post; this file only makes them quicker.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const typing = (e) => /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;
  const click = (id) => { const el = document.getElementById(id); if (el) el.click(); };

  // Face selection: click toggles, shift+click selects a range; the count follows.
  const boxes = Array.from(document.querySelectorAll("#faces input[type=checkbox]"));
  const counter = document.getElementById("selected-count");
  const recount = () => { if (counter) counter.textContent = boxes.filter((b) => b.checked).length; };
  let last = null;
  boxes.forEach((box, i) => {
    box.addEventListener("click", (e) => {
      if (e.shiftKey && last !== null) {
        const [from, to] = last < i ? [last, i] : [i, last];
        for (let k = from; k <= to; k++) boxes[k].checked = box.checked;
      }
      last = i;
      recount();
    });
  });
  recount();

  // Name completion for "move to" and "merge into" fields.
  const list = document.getElementById("names");
  let pending = null;
  document.querySelectorAll("input.names").forEach((input) => {
    input.addEventListener("input", () => {
      clearTimeout(pending);
      pending = setTimeout(async () => {
        const reply = await fetch("/names?q=" + encodeURIComponent(input.value), {credentials: "same-origin"});
        if (!reply.ok || !list) return;
        list.replaceChildren(...(await reply.json()).map((p) => {
          const option = document.createElement("option");
          option.value = p.name;
          option.label = "person " + p.id;
          return option;
        }));
      }, 120);
    });
  });

  // Enter in the new person's name field makes the new person (not the form's default, Move).
  document.querySelectorAll("input[data-enter]").forEach((input) => {
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); click(input.dataset.enter); }
    });
  });

  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key;
    if (key === "u") return click("undo");
    if (page === "suggestions") {
      if (key === "y") click("yes"); else if (key === "n") click("no"); else if (key === "s") click("skip");
      return;
    }
    if (page === "people" && key === "/") { e.preventDefault(); document.getElementById("search").focus(); return; }
    if (page === "person" || page === "unknown") {
      if (key === "a") { boxes.forEach((b) => { b.checked = true; }); recount(); }
      else if (key === "Escape") { boxes.forEach((b) => { b.checked = false; }); recount(); }
      else if (key === "r" && page === "person" && boxes.some((b) => b.checked)) click("reject");
    }
  });
})();
