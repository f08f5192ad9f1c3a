// TensorBoard inside the notebook, reached through jupyter-server-proxy
// (<base_url>proxy/<port>/) so that it also works behind a remote JupyterLab.
function proxiedUrl(port) {
  const cfg = document.getElementById("jupyter-config-data");
  if (cfg) {
    try {
      const base = JSON.parse(cfg.textContent).baseUrl || "/";
      return `${base}proxy/${port}/`;
    } catch { /* fall through */ }
  }
  return `http://127.0.0.1:${port}/`;  // a front end that is not a Jupyter server page
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "wb-tensorboard";
  el.append(box);
  function draw() {
    const port = model.get("port");
    box.replaceChildren();
    if (!port || model.get("stopped")) {
      const note = document.createElement("div");
      note.className = "wb-tensorboard-stopped";
      note.textContent = `TensorBoard for ${model.get("title")} is stopped.`;
      box.append(note);
      return;
    }
    const link = document.createElement("a");
    link.href = proxiedUrl(port);
    link.target = "_blank";
    link.textContent = `TensorBoard: ${model.get("title")} ↗`;
    link.className = "wb-tensorboard-link";
    const frame = document.createElement("iframe");
    frame.src = proxiedUrl(port);
    frame.className = "wb-tensorboard-frame";
    frame.style.width = "100%";
    frame.style.height = `${model.get("height")}px`;
    frame.style.border = "1px solid #ddd";
    box.append(link, frame);
  }
  const keys = ["port", "stopped", "height", "title"];
  for (const k of keys) model.on(`change:${k}`, draw);
  draw();
  return () => { for (const k of keys) model.off(`change:${k}`, draw); };
}

export default { render };
