// SPARQL page: "edit" copies an example query into the editor without running it.
(function () {
  "use strict";
  var editor = document.getElementById("sparql-query");
  if (!editor) {
    return;
  }
  var buttons = document.querySelectorAll("button.load-example");
  Array.prototype.forEach.call(buttons, function (button) {
    button.addEventListener("click", function () {
      editor.value = button.getAttribute("data-query") || "";
      editor.focus();
      window.scrollTo(0, 0);
    });
  });
})();
