// The playground chat page: renders the local user's private chat with the bot, or the group
// chat the bot is in (its other members simulated: the page can send as them), and sends what
// the person does.
"use strict";

const chat = document.getElementById("chat");
const typing = document.getElementById("typing");
const notice = document.getElementById("notice");
const starting = document.getElementById("starting");
const newer = document.getElementById("newer");
const commandBar = document.getElementById("commands");
const drop = document.getElementById("drop");
const viewer = document.getElementById("viewer");
const sendAs = document.getElementById("as");
const tabs = document.querySelectorAll("#chats button");
let current = "private"; // the chat on show: "private" or "group"
let me = null; // the local user's id
let polling = null; // the long poll of the chat on show, aborted when another is picked
let version = "";
// Button answers shown already; undefined until the first snapshot, whose notice is from
// before this page was loaded and is not shown again.
let shownNotice;
let noticeTimer = null;
let commandsShown = "";
const rendered = new Map(); // message_id -> [signature, element]

// Follow new messages (and images that load later) unless the person scrolled up to read; then
// a button offers the new ones.
function atBottom() {
  return chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
}
let stickToBottom = true;
chat.addEventListener("scroll", () => {
  stickToBottom = atBottom();
  if (stickToBottom) newer.hidden = true;
});
function follow() {
  if (stickToBottom) chat.scrollTop = chat.scrollHeight;
}
newer.addEventListener("click", () => {
  stickToBottom = true;
  newer.hidden = true;
  follow();
});

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Bot texts may use Telegram's HTML formatting: keep its simple tags, escape the rest.
function formatText(text) {
  return escapeHtml(text).replace(/&lt;(\/?)(b|i|u|s|code|pre)&gt;/g, "<$1$2>");
}

// A picture at its own size (chat pictures are capped), over the chat; a click or Esc closes.
function openViewer(src) {
  viewer.querySelector("img").src = src;
  viewer.hidden = false;
}
viewer.addEventListener("click", () => { viewer.hidden = true; });
document.addEventListener("keydown", (event) => { if (event.key === "Escape") viewer.hidden = true; });

// Who wrote a message: "Bot", "You" for the local user, a group member's name.
function sender(from) {
  if (!from) return "";
  if (from.is_bot) return "Bot";
  return current === "group" && from.id !== me ? from.first_name : "You";
}

// A link of the bot's that opens its private chat at a dialog (`t.me/<bot>?start=<payload>`,
// as a group's buttons do): in the playground it starts that dialog in the private chat tab.
function deepLink(url) {
  const match = /^https:\/\/t\.me\/[A-Za-z0-9_]+\?start=([A-Za-z0-9_-]{1,64})$/.exec(url);
  return match ? match[1] : null;
}

function renderMessage(message) {
  const div = document.createElement("div");
  const mine = message.from && !message.from.is_bot && sender(message.from) === "You";
  div.className = "msg " + (message.from && message.from.is_bot ? "bot" : "user");
  if (message.from && !message.from.is_bot && !mine) div.classList.add("member");
  div.dataset.messageId = message.message_id;
  if (current === "group" && message.from && !mine) {
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = sender(message.from);
    div.appendChild(who);
  }
  if (message.reply_to_message) div.appendChild(renderQuote(message.reply_to_message));
  if (message.photo && message.photo.length) {
    const img = document.createElement("img");
    img.src = "/api/files/" + encodeURIComponent(message.photo[message.photo.length - 1].file_id);
    img.alt = "photo";
    img.addEventListener("load", follow);
    img.addEventListener("click", () => openViewer(img.src));
    div.appendChild(img);
  }
  const clip = message.video_note || message.animation || message.video;
  if (clip) {
    const video = document.createElement("video");
    video.src = "/api/files/" + encodeURIComponent(clip.file_id);
    video.muted = true;
    video.loop = true;
    video.autoplay = true;
    video.playsInline = true;
    video.className = message.video_note ? "note" : "clip";
    video.addEventListener("loadeddata", follow);
    div.appendChild(video);
  } else if (message.document) {
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
  if (message.reactions && message.reactions.length) {
    const reactions = document.createElement("div");
    reactions.className = "reactions";
    reactions.textContent = message.reactions.map((r) => r.emoji).join(" ");
    div.appendChild(reactions);
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
          const payload = deepLink(button.url);
          if (payload) {
            el.addEventListener("click", (event) => {
              event.preventDefault();
              show("private");
              post("/api/send", { text: "/start " + payload, chat: "private" });
            });
          }
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

// A reply shows the message it answers, as Telegram does; a click shows that message.
function renderQuote(quoted) {
  const quote = document.createElement("div");
  quote.className = "quote";
  const who = sender(quoted.from);
  const what = quoted.text || quoted.caption || (quoted.photo ? "Photo"
    : quoted.video_note ? "Video message" : quoted.animation ? "GIF" : quoted.video ? "Video"
    : quoted.document ? "File" : "");
  quote.textContent = who + ": " + what;
  if (quoted.photo && quoted.photo.length) {
    const img = document.createElement("img");
    img.src = "/api/files/" + encodeURIComponent(quoted.photo[quoted.photo.length - 1].file_id);
    img.alt = "photo";
    quote.prepend(img);
  }
  quote.addEventListener("click", () => {
    const target = chat.querySelector(`[data-message-id="${quoted.message_id}"]`);
    if (target) target.scrollIntoView({ block: "center" });
  });
  return quote;
}

// Only new or changed messages are built again: images already shown keep their height, so
// the scroll position (and following the chat) does not jump.
function renderMessages(messages) {
  const seen = new Set();
  let added = false;
  let previous = null;
  for (const message of messages) {
    const signature = JSON.stringify(message);
    const known = rendered.get(message.message_id);
    let element = known && known[0] === signature ? known[1] : null;
    if (!element) {
      element = renderMessage(message);
      if (known) known[1].replaceWith(element);
      else added = true;
      rendered.set(message.message_id, [signature, element]);
    }
    const expected = previous ? previous.nextSibling : chat.firstChild;
    if (expected !== element) chat.insertBefore(element, expected);
    previous = element;
    seen.add(message.message_id);
  }
  for (const [id, [, element]] of rendered) {
    if (!seen.has(id)) {
      element.remove();
      rendered.delete(id);
    }
  }
  return added;
}

function renderCommands(commands) {
  const signature = JSON.stringify(commands);
  if (signature === commandsShown) return;
  commandsShown = signature;
  commandBar.replaceChildren(...commands.map((command) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.command = "/" + command.command;
    button.textContent = "/" + command.command;
    button.title = command.description;
    button.addEventListener("click", () => say(button.dataset.command));
    return button;
  }));
}

// A notice (a button's answer, an upload refused) shows once and fades.
function showNotice(text, isError) {
  notice.textContent = text;
  notice.classList.toggle("error", Boolean(isError));
  notice.hidden = false;
  notice.classList.remove("fading");
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice.classList.add("fading");
    noticeTimer = setTimeout(() => { notice.hidden = true; }, 1000);
  }, 4000);
}

function render(snapshot) {
  me = snapshot.me;
  const hint = chat.querySelector(".hint");
  if (snapshot.messages.length && hint) hint.remove();
  const added = renderMessages(snapshot.messages);
  if (!snapshot.messages.length && !hint) {
    chat.innerHTML = current === "group"
      ? '<p class="hint">A group with the bot and two simulated members. Type <code>@' +
        escapeHtml(snapshot.bot_username || "") + '</code>, then attach or drop a photo: it goes ' +
        "with that caption. Personal commands (<code>/contribute</code>) answer with a button " +
        "to the private chat.</p>"
      : '<p class="hint">Send <code>/start</code>, or drop face photos or a clip anywhere on this page.</p>';
  }
  starting.hidden = snapshot.bot_ready;
  renderMembers(snapshot.members);
  typing.hidden = !snapshot.typing;
  renderCommands(snapshot.commands);
  const noticeId = snapshot.notice ? snapshot.notice.id : null;
  if (shownNotice !== undefined && snapshot.notice && noticeId !== shownNotice) {
    showNotice(snapshot.notice.text, false);
  }
  shownNotice = noticeId;
  if (stickToBottom) follow();
  else if (added) newer.hidden = false;
}

// The group's members to send as: the local user first.
let membersShown = "";
function renderMembers(members) {
  sendAs.hidden = current !== "group";
  const signature = JSON.stringify(members);
  if (signature === membersShown) return;
  membersShown = signature;
  sendAs.replaceChildren(...members.map((member, index) => {
    const option = document.createElement("option");
    option.value = member.id;
    option.textContent = index === 0 ? "You" : member.name;
    return option;
  }));
}

async function poll(controller) {
  while (!controller.signal.aborted) {
    try {
      const url = `/api/chat?chat=${current}&since=${encodeURIComponent(version)}`;
      const response = await fetch(url, { signal: controller.signal });
      const snapshot = await response.json();
      if (!controller.signal.aborted && snapshot.version !== version) {
        version = snapshot.version;
        render(snapshot);
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

// Show the private chat or the group: rendered afresh from the server's snapshot.
function show(which) {
  if (which === current && polling) return;
  current = which;
  for (const tab of tabs) tab.classList.toggle("current", tab.dataset.chat === which);
  if (polling) polling.abort();
  polling = new AbortController();
  version = "";
  shownNotice = undefined;
  rendered.clear();
  chat.replaceChildren();
  stickToBottom = true;
  poll(polling);
}
for (const tab of tabs) tab.addEventListener("click", () => show(tab.dataset.chat));

// A text (or command) in the chat on show; in the group, from the member picked.
function say(text) {
  const body = { text, chat: current };
  if (current === "group") body.as = sendAs.value;
  return post("/api/send", body);
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) showError(response);
}

// The server's own words when it sent JSON; otherwise the status line.
async function showError(response) {
  let text = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error) text = body.error;
  } catch (error) {
    // not JSON (a proxy's or aiohttp's own page): the status line says enough
  }
  showNotice(text, true);
}

// Clips (videos, GIFs) go one by one, as Telegram sends them; photos together (an album).
function isClip(file) {
  return file.type.startsWith("video/") || file.type === "image/gif";
}

async function sendClip(file) {
  const form = new FormData();
  form.append("clip", file, file.name);
  const response = await fetch("/api/clip", { method: "POST", body: form });
  if (!response.ok) await showError(response);
}

async function sendPhotos(files) {
  const clips = [...files].filter(isClip);
  // Clips go to the private chat only (the group's bot answers photos mentioning it).
  if (clips.length && current === "group") showNotice("send clips in the private chat", true);
  else for (const file of clips) await sendClip(file);
  const images = [...files].filter((f) => f.type.startsWith("image/") && !isClip(f));
  if (!images.length) {
    if (![...files].some(isClip)) showNotice("only images and videos can be sent", true);
    return;
  }
  const form = new FormData();
  for (const file of images) form.append("photo", file, file.name);
  // In the group the text typed so far goes with the photos as their caption: the bot
  // answers a photo there only when its caption mentions it (or is /predict).
  let query = "";
  if (current === "group") {
    const input = document.getElementById("text");
    query = `?chat=group&as=${encodeURIComponent(sendAs.value)}`;
    query += `&caption=${encodeURIComponent(input.value.trim())}`;
    input.value = "";
  }
  const response = await fetch("/api/photos" + query, { method: "POST", body: form });
  if (!response.ok) await showError(response);
}

document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  const text = input.value.trim();
  if (text) say(text);
  input.value = "";
});
document.getElementById("file").addEventListener("change", (event) => {
  sendPhotos(event.target.files);
  event.target.value = "";
});
document.addEventListener("dragover", (event) => { event.preventDefault(); drop.hidden = false; });
document.addEventListener("dragleave", (event) => { if (!event.relatedTarget) drop.hidden = true; });
document.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.hidden = true;
  sendPhotos(event.dataTransfer.files);
});

show("private");
