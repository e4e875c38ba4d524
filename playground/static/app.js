// The playground chat page: renders the local chat and sends what the person does.
"use strict";

const chat = document.getElementById("chat");
const typing = document.getElementById("typing");
const notice = document.getElementById("notice");
const drop = document.getElementById("drop");
let version = "";
// Follow new messages (and images that load later) unless the person scrolled up to read.
let stickToBottom = true;
chat.addEventListener("scroll", () => {
  stickToBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
});

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Bot texts may use Telegram's HTML formatting: keep its simple tags, escape the rest.
function formatText(text) {
  return escapeHtml(text).replace(/&lt;(\/?)(b|i|u|s|code|pre)&gt;/g, "<$1$2>");
}

function renderMessage(message) {
  const div = document.createElement("div");
  div.className = "msg " + (message.from && message.from.is_bot ? "bot" : "user");
  div.dataset.messageId = message.message_id;
  if (message.photo && message.photo.length) {
    const img = document.createElement("img");
    img.src = "/api/files/" + encodeURIComponent(message.photo[message.photo.length - 1].file_id);
    img.alt = "photo";
    img.addEventListener("load", () => { if (stickToBottom) chat.scrollTop = chat.scrollHeight; });
    div.appendChild(img);
  }
  if (message.document) {
    const link = document.createElement("a");
    link.className = "doc";
    link.href = "/api/files/" + encodeURIComponent(message.document.file_id);
    link.download = message.document.file_name || "file";
    link.textContent = message.document.file_name || "file";
    div.appendChild(link);
  }
  const text = message.text || message.caption;
  if (text) {
    const span = document.createElement("div");
    span.className = "text";
    span.innerHTML = formatText(text);
    div.appendChild(span);
  }
  const rows = (message.reply_markup && message.reply_markup.inline_keyboard) || [];
  if (rows.length) {
    const keyboard = document.createElement("div");
    keyboard.className = "keyboard";
    for (const row of rows) {
      const rowDiv = document.createElement("div");
      rowDiv.className = "row";
      for (const button of row) {
        let el;
        if (button.url) {
          el = document.createElement("a");
          el.href = button.url;
          el.target = "_blank";
        } else {
          el = document.createElement("button");
          el.type = "button";
          el.addEventListener("click", () =>
            post("/api/press", { message_id: message.message_id, data: button.callback_data }));
        }
        el.textContent = button.text;
        rowDiv.appendChild(el);
      }
      keyboard.appendChild(rowDiv);
    }
    div.appendChild(keyboard);
  }
  return div;
}

function render(snapshot) {
  chat.replaceChildren(...snapshot.messages.map(renderMessage));
  if (!snapshot.messages.length) {
    chat.innerHTML = '<p class="hint">Send <code>/start</code>, or drop face photos anywhere on this page.</p>';
  }
  typing.hidden = !snapshot.typing;
  notice.hidden = !snapshot.notice;
  notice.textContent = snapshot.notice || "";
  if (stickToBottom) chat.scrollTop = chat.scrollHeight;
}

async function poll() {
  for (;;) {
    try {
      const response = await fetch("/api/chat?since=" + encodeURIComponent(version));
      const snapshot = await response.json();
      if (snapshot.version !== version) {
        version = snapshot.version;
        render(snapshot);
      }
    } catch (error) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) showError(await response.json());
}

function showError(body) {
  notice.hidden = false;
  notice.textContent = body.error || "something went wrong";
}

async function sendPhotos(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/"));
  if (!images.length) return showError({ error: "only images can be sent as photos" });
  const form = new FormData();
  for (const file of images) form.append("photo", file, file.name);
  const response = await fetch("/api/photos", { method: "POST", body: form });
  if (!response.ok) showError(await response.json());
}

document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  const text = input.value.trim();
  if (text) post("/api/send", { text });
  input.value = "";
});
document.getElementById("file").addEventListener("change", (event) => {
  sendPhotos(event.target.files);
  event.target.value = "";
});
for (const button of document.querySelectorAll("#commands button")) {
  button.addEventListener("click", () => post("/api/send", { text: button.dataset.command }));
}
document.addEventListener("dragover", (event) => { event.preventDefault(); drop.hidden = false; });
document.addEventListener("dragleave", (event) => { if (!event.relatedTarget) drop.hidden = true; });
document.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.hidden = true;
  sendPhotos(event.dataTransfer.files);
});

poll();
