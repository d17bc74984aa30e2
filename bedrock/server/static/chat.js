// The chat page: one session's conversation, streamed from POST /invocations (or, with `?transport=ws` in the
// page's address, over one WebSocket to /ws; see SocketTransport).
//
// No framework and no build step (`make run` needs no Node); SSE framing is left to eventsource-parser
// (vendored as published, see vendor/eventsource-parser/), which buffers frames split across network reads,
// several frames in one read, `: ping` comments and `id:` lines. EventSource itself cannot POST a body.
//
// Every prompt, answer, argument and result is inserted as text (textContent / Text nodes), never as HTML,
// and the server's Content-Security-Policy forbids inline script and style besides.
import { EventSourceParserStream } from './vendor/eventsource-parser/stream.js';

const ENDPOINT = '/invocations';
const SESSION_KEY = 'langgraph-agentcore.session';
const TOKEN_KEY = 'langgraph-agentcore.token';
const RECONNECTS = 5; // re-attach a dropped stream this many times (backoff 0.25 s … 4 s) before giving up
const BACKOFF_MS = 250;

const byId = (id) => document.getElementById(id);
const ui = {
  log: byId('log'), form: byId('composer'), prompt: byId('prompt'), send: byId('send'), stop: byId('stop'),
  newChat: byId('new-chat'), session: byId('session-id'), notice: byId('notice'),
  memoriesToggle: byId('memories-toggle'), memories: byId('memories'), memoryList: byId('memories-list'),
  memoryError: byId('memories-error'), memoryEmpty: byId('memories-empty'), memoryMore: byId('memories-more'),
  forgetAll: byId('forget-all'), tokenForm: byId('token-form'), token: byId('token'), tokenWhy: byId('token-why'),
};

let sessionId = loadSession();
let active = null; // the run being followed: a Follow (one at a time per page)

// --- session -------------------------------------------------------------------------------------------------

function newSessionId() {
  // getRandomValues, not randomUUID: the page may be opened over plain http on a LAN address (not a secure
  // context), where randomUUID does not exist.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'chat-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function loadSession() {
  let id = null;
  try { id = localStorage.getItem(SESSION_KEY); } catch { /* storage disabled: a session per load */ }
  if (!id || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(id)) {
    id = newSessionId();
    saveSession(id);
  }
  return id;
}

function saveSession(id) {
  try { localStorage.setItem(SESSION_KEY, id); } catch { /* storage disabled */ }
}

// --- the bearer token (AUTH_MODE=jwt) ------------------------------------------------------------------------

// A server with AUTH_MODE=jwt refuses every request without a bearer token (401 `unauthorized`): the page then asks
// for one, keeps it for this tab only (sessionStorage: gone with the tab, never sent to another site) and loads
// again, sending it as each POST's Authorization header and as each WebSocket's first message. Without one, or with
// AUTH_MODE=none, nothing is sent. A token refused later (expired) asks again.
let bearer = loadToken();

function loadToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) ?? ''; } catch { return ''; }
}

function askForToken(error) {
  ui.tokenWhy.textContent = `${error.message ?? 'A bearer token is required.'} This server checks bearer tokens `
    + '(AUTH_MODE=jwt): paste one to go on. It is kept in this tab only.';
  if (ui.tokenForm.hidden) {
    ui.tokenForm.hidden = false;
    ui.token.focus();
  }
}

ui.tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = ui.token.value.trim().replace(/^bearer\s+/i, '');
  if (!token) return;
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* storage disabled: this load only */ }
  bearer = token;
  ui.token.value = '';
  ui.tokenForm.hidden = true;
  window.location.reload(); // the conversation, memories and socket again, with the token
});

// --- DOM helpers ---------------------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role' || key === 'for') {
      node.setAttribute(key, value);
    } else node[key] = value;
  }
  node.append(...children); // strings become Text nodes: never parsed as HTML
  return node;
}

let standingNotice = ''; // shown whenever no other notice is: what stays true (the page fell back to HTTP)

function showNotice(text) {
  const shown = text || standingNotice;
  ui.notice.textContent = shown;
  ui.notice.hidden = !shown;
}

// Where a step happened: its node, inside its subgraphs' (`research › search`).
function nodeLabel(data) {
  return [...(Array.isArray(data?.namespace) ? data.namespace : []), data?.node].filter(Boolean).join(' › ');
}

// A graph's value as one line: a string as it is, anything else as compact JSON.
function compact(value) {
  return typeof value === 'string' ? value : JSON.stringify(value ?? null);
}

function pretty(value) {
  return JSON.stringify(value ?? null, null, 2);
}

function shorten(text, max = 160) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// Keyboard users land on a new decision unless they are busy elsewhere on the page.
function focusIsFree() {
  const focused = document.activeElement;
  return !focused || focused === document.body || focused === ui.prompt;
}

// Enter sends a form from its text box (as the message box does); Shift+Enter adds a line.
function enterSubmits(textarea, form) {
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

// An answer typed by a person: JSON if it reads as JSON (`42`, `{"a": 1}`, `"quoted"`), else the text itself.
function typedValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function parseArgs(text) {
  let args;
  try {
    args = JSON.parse(text);
  } catch (e) {
    return { problem: `Not valid JSON: ${e.message}` };
  }
  if (!args || typeof args !== 'object' || Array.isArray(args)) {
    return { problem: 'The arguments must be a JSON object.' };
  }
  return { args };
}

// The decisions LangChain's HumanInTheLoopMiddleware allows for a tool (its review_configs; all when unsaid).
const HITL_DECISIONS = ['approve', 'edit', 'reject', 'respond'];

function allowedFor(name, configs) {
  const config = (Array.isArray(configs) ? configs : []).find((c) => c && c.action_name === name);
  const allowed = Array.isArray(config?.allowed_decisions) ? config.allowed_decisions : HITL_DECISIONS;
  return HITL_DECISIONS.filter((d) => allowed.includes(d));
}

let cards = 0; // numbers the ids of the decision forms' fields

function argsSummary(args) {
  const values = Object.values(args || {});
  if (values.length === 1 && typeof values[0] === 'string') return values[0];
  return JSON.stringify(args ?? {});
}

function seconds(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

function scrollToEnd() {
  const nearEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
  if (nearEnd) window.scrollTo(0, document.body.scrollHeight);
}

// --- one turn on the page ------------------------------------------------------------------------------------

// A turn: the user's message and the agent's answer: text blocks, tool steps, an approval, metrics, an error.
class TurnView {
  constructor(prompt) {
    this.userText = el('p', { class: 'text', text: prompt ?? '' });
    this.parts = el('div', { class: 'parts' });
    this.footer = el('div', { class: 'footer' });
    this.answer = el('section', { class: 'msg agent', 'aria-live': 'polite', 'aria-busy': 'false',
      'aria-label': 'Agent' }, el('h2', { class: 'who', text: 'Agent' }), this.parts, this.footer);
    this.node = el('li', { class: 'turn' },
      el('section', { class: 'msg user', 'aria-label': 'You' }, el('h2', { class: 'who', text: 'You' }),
        this.userText),
      this.answer);
    this.tools = new Map(); // tool_call_id → {node, result, summary}: a call and its result may be runs apart
    this.startRun();
    ui.log.append(this.node);
  }

  startRun() {
    this.blocks = new Map(); // step → text block, of this run (each run numbers its steps from 1)
    this.runParts = [];
    this.lastLabel = ''; // the node named above the last message shown
    this.footer.replaceChildren();
  }

  set state(value) {
    this.answer.dataset.state = value; // streaming | done | interrupted | stopped | error
    this.answer.setAttribute('aria-busy', value === 'streaming' ? 'true' : 'false');
  }

  add(node) {
    this.parts.append(node);
    this.runParts.push(node);
    return node;
  }

  // The node a message comes from, named above it when it is not the one named last.
  mark(data) {
    const label = nodeLabel(data);
    if (!label || label === this.lastLabel) return;
    this.lastLabel = label;
    this.add(el('p', { class: 'node', text: label }));
  }

  textBlock(step, data) {
    let block = this.blocks.get(step);
    if (!block) {
      this.mark(data);
      block = this.add(el('p', { class: 'text answer', 'data-node': data?.node ?? '' }));
      this.blocks.set(step, block);
    }
    return block;
  }

  human(data) {
    if (!this.userText.textContent) this.userText.textContent = data.content ?? '';
  }

  input(data) { // the run sent the graph's whole input, not a prompt
    if (!this.userText.textContent) this.userText.textContent = data.content || compact(data.values ?? {});
  }

  token(data) {
    this.textBlock(data.step ?? 0, data).append(data.token ?? '');
    scrollToEnd();
  }

  ai(data) {
    const text = data.content ?? '';
    if (text) this.textBlock(data.step, data).textContent = text; // the whole message: what the tokens added up to
    else this.blocks.get(data.step)?.remove();
    const calls = data.tool_calls ?? [];
    if (calls.length && !text) this.mark(data);
    for (const call of calls) this.toolCall(call);
  }

  // What a node wrote with get_stream_writer(): one line of progress.
  progress(data) {
    this.add(el('p', { class: 'progress', 'data-node': data.node ?? '' },
      el('span', { class: 'node', text: nodeLabel(data) || 'graph' }), ' ', compact(data.value)));
    scrollToEnd();
  }

  // A node's update besides messages: its name and values on one muted line, expandable.
  update(data) {
    const values = data.values ?? {};
    this.add(el('details', { class: 'update', 'data-node': data.node ?? '' },
      el('summary', {}, el('span', { class: 'node', text: nodeLabel(data) || 'graph' }), ' ',
        el('code', { text: shorten(compact(values)) })),
      el('pre', { text: pretty(values) })));
  }

  toolCall(call) {
    if (this.tools.has(call.id)) { // an edited call, shown again with the arguments that ran
      const known = this.tools.get(call.id);
      known.args.textContent = JSON.stringify(call.args ?? {}, null, 2);
      known.call.textContent = `${call.name}(${argsSummary(call.args)})`;
      return;
    }
    const callText = el('code', { class: 'call', text: `${call.name}(${argsSummary(call.args)})` });
    const summaryResult = el('span', { class: 'result', text: '…' });
    const args = el('pre', { text: JSON.stringify(call.args ?? {}, null, 2) });
    const result = el('pre', { text: '(waiting)' });
    const node = el('details', { class: 'tool', 'data-call-id': call.id, 'data-status': 'pending' },
      el('summary', {}, el('span', { class: 'label', text: 'Tool ' }), callText, ' → ', summaryResult),
      el('h3', { text: 'Arguments' }), args, el('h3', { text: 'Result' }), result);
    this.add(node);
    this.tools.set(call.id, { node, call: callText, summary: summaryResult, args, result });
  }

  toolResult(data) {
    if (!this.tools.has(data.tool_call_id)) {
      this.toolCall({ id: data.tool_call_id, name: data.tool_name ?? 'tool', args: {} });
    }
    const tool = this.tools.get(data.tool_call_id);
    tool.node.dataset.status = data.status ?? 'success';
    tool.summary.textContent = data.content ?? '';
    tool.result.textContent = data.content ?? '';
  }

  resumed(data) { // an answer's own card left a note of what was answered
    if (data.content === 'approved' || data.content === 'declined') {
      this.add(el('p', { class: 'note', text: `Tool call ${data.content}.` }));
    }
  }

  // What the graph waits for: the built-in agent's tool approval, a HumanInTheLoopMiddleware review, or any
  // other interrupt() as a question. `decide(resume)` sends the answer.
  interrupt(data, decide) {
    const value = data.value;
    const id = data.interrupt_id;
    if (data.tool_name) this.approval(data, decide);
    else if (value && typeof value === 'object' && Array.isArray(value.action_requests)) {
      this.review(value.action_requests, value.review_configs,
        (decisions) => decide({ interrupt_id: id, value: { decisions } }));
    } else if (value && typeof value === 'object' && value.type === 'tool_approval' && typeof value.name === 'string') {
      this.review([value], null, ([decision]) => decide({ interrupt_id: id, value: decision }));
    } else this.question(data, decide);
  }

  approval(data, decide) {
    const original = JSON.stringify(data.args ?? {}, null, 2);
    const id = `args-${data.interrupt_id}`;
    const editor = el('textarea', { id, rows: 3, spellcheck: false, value: original });
    const problem = el('p', { class: 'problem', role: 'alert' });
    const approve = el('button', { type: 'submit', class: 'approve', text: 'Approve' });
    const decline = el('button', { type: 'button', class: 'decline', text: 'Decline' });
    const card = el('form', { class: 'approval', 'aria-label': `Approve ${data.tool_name}` },
      el('p', {}, 'The agent wants to run ', el('strong', { text: data.tool_name }), '.'),
      el('label', { for: id, text: 'Arguments (JSON, editable)' }), editor, problem,
      el('div', { class: 'actions' }, approve, decline));
    const finish = (approved) => {
      let args = null;
      if (approved && editor.value.trim() !== original.trim()) {
        try {
          args = JSON.parse(editor.value);
        } catch (e) {
          problem.textContent = `Not valid JSON: ${e.message}`;
          return;
        }
        if (!args || typeof args !== 'object' || Array.isArray(args)) {
          problem.textContent = 'The arguments must be a JSON object.';
          return;
        }
      }
      card.remove();
      decide({ interrupt_id: data.interrupt_id, approved, ...(args ? { args } : {}) });
    };
    card.addEventListener('submit', (event) => { event.preventDefault(); finish(true); });
    decline.addEventListener('click', () => finish(false));
    this.footer.append(card);
    if (focusIsFree()) approve.focus(); // keyboard users land on the decision
    scrollToEnd();
  }

  // HumanInTheLoopMiddleware: per tool call approve (its arguments editable when edits are allowed: an edit),
  // reject (a reason, optional) or answer in the tool's place; one decision per call, in their order.
  review(requests, configs, send) {
    const n = (cards += 1);
    const problem = el('p', { class: 'problem', role: 'alert' });
    const submit = el('button', { type: 'submit', class: 'approve',
      text: requests.length === 1 ? 'Send decision' : 'Send decisions' });
    const card = el('form', { class: 'review', 'aria-label': `Review ${requests.length === 1 ? 'a tool call'
      : `${requests.length} tool calls`}` });
    const actions = requests.map((request, i) => this.reviewAction(request, configs, `review-${n}-${i}`));
    card.append(...actions.map((a) => a.node), problem, el('div', { class: 'actions' }, submit));
    card.addEventListener('submit', (event) => {
      event.preventDefault();
      const decisions = [];
      for (const action of actions) {
        const decision = action.decision();
        if (decision.problem) {
          problem.textContent = `${action.name}: ${decision.problem}`;
          action.focus();
          return;
        }
        decisions.push(decision);
      }
      card.remove(); // what was decided stays in the answer (the footer is the next run's)
      this.add(el('p', { class: 'note', text: actions.map((a, i) => a.said(decisions[i])).join(' · ') }));
      send(decisions);
    });
    this.footer.append(card);
    if (focusIsFree()) submit.focus();
    scrollToEnd();
  }

  reviewAction(request, configs, prefix) {
    const name = String(request.name ?? 'tool');
    const allowed = allowedFor(name, configs);
    const canRun = allowed.includes('approve') || allowed.includes('edit');
    const editable = allowed.includes('edit');
    const original = pretty(request.args ?? {});
    const rows = Math.min(Math.max(original.split('\n').length, 2), 10);
    const editor = el('textarea', { id: `${prefix}-args`, rows, spellcheck: false, value: original,
      readOnly: !editable });
    const message = el('input', { id: `${prefix}-message`, type: 'text', autocomplete: 'off' });
    const messageLabel = el('label', { for: `${prefix}-message` });
    const messageRow = el('div', { class: 'message' }, messageLabel, message);
    const choices = [];
    const names = { approve: allowed.includes('approve') ? 'Approve' : 'Run with these arguments',
      reject: 'Reject', respond: 'Answer instead of the tool' };
    const offered = [...(canRun ? ['approve'] : []), ...allowed.filter((d) => d === 'reject' || d === 'respond')];
    for (const [i, kind] of offered.entries()) {
      const radio = el('input', { type: 'radio', name: `${prefix}-decision`, value: kind, checked: i === 0 });
      choices.push(radio);
      radio.addEventListener('change', () => show());
    }
    const chosen = () => choices.find((c) => c.checked)?.value ?? offered[0];
    const show = () => {
      const kind = chosen();
      messageRow.hidden = kind !== 'reject' && kind !== 'respond';
      messageLabel.textContent = kind === 'respond' ? 'The tool’s answer' : 'Reason (optional)';
    };
    const node = el('fieldset', { class: 'action', 'data-tool': name },
      el('legend', {}, 'Run ', el('strong', { text: name }), '?'),
      ...(request.description ? [el('p', { class: 'description', text: String(request.description) })] : []),
      el('label', { for: editor.id, text: editable ? 'Arguments (JSON, editable)' : 'Arguments' }), editor,
      el('div', { class: 'choices', role: 'radiogroup', 'aria-label': `Decision on ${name}` },
        ...choices.map((radio) => el('label', { class: 'choice' }, radio, ` ${names[radio.value]}`))),
      messageRow);
    show();
    return {
      name,
      node,
      focus: () => (chosen() === 'approve' ? editor : message).focus(),
      decision: () => {
        const kind = chosen();
        if (kind === 'reject') return message.value.trim() ? { type: 'reject', message: message.value.trim() }
          : { type: 'reject' };
        if (kind === 'respond') return message.value.trim() ? { type: 'respond', message: message.value.trim() }
          : { problem: 'write the answer the tool would have given.' };
        if (!kind) return { problem: 'no decision is allowed here.' };
        const changed = editor.value.trim() !== original.trim();
        if (!changed && allowed.includes('approve')) return { type: 'approve' };
        const { args, problem } = parseArgs(editor.value);
        if (problem) return { problem };
        return { type: 'edit', edited_action: { name, args } };
      },
      said: (decision) => ({ approve: `${name}: approved`, edit: `${name}: approved with edited arguments`,
        reject: `${name}: rejected`, respond: `${name}: answered` })[decision.type],
    };
  }

  // Any other interrupt(): its value (text, or JSON) and a box for the answer.
  question(data, decide) {
    const n = (cards += 1);
    const value = data.value;
    const answer = el('textarea', { id: `answer-${n}`, rows: 2, spellcheck: true });
    const problem = el('p', { class: 'problem', role: 'alert' });
    const send = el('button', { type: 'submit', class: 'approve', text: 'Answer' });
    const asked = typeof value === 'string' ? el('p', { class: 'text asked', text: value })
      : el('pre', { class: 'asked', text: pretty(value) });
    const card = el('form', { class: 'question', 'aria-label': 'The agent asks' },
      el('p', { class: 'asker', text: `Question${nodeLabel(data) ? ` from ${nodeLabel(data)}` : ''}` }), asked,
      el('label', { for: answer.id, text: 'Your answer (text, or JSON)' }), answer, problem,
      el('div', { class: 'actions' }, send));
    card.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = answer.value.trim();
      if (!text) {
        problem.textContent = 'Type an answer first.';
        return;
      }
      card.remove();
      this.add(el('p', { class: 'note', text: `You answered: ${text}` }));
      decide({ interrupt_id: data.interrupt_id, value: typedValue(text) });
    });
    enterSubmits(answer, card);
    this.footer.append(card);
    if (focusIsFree()) answer.focus(); // keyboard users type the answer at once
    scrollToEnd();
  }

  end(data) {
    const m = data.metrics ?? {};
    const parts = [`${m.tokens ?? 0} tokens (${m.input_tokens ?? 0} in, ${m.output_tokens ?? 0} out)`,
      `${m.tool_calls ?? 0} tool call${m.tool_calls === 1 ? '' : 's'}`];
    if (m.latency_ms != null) parts.push(seconds(m.latency_ms));
    if (m.time_to_first_token_ms != null) parts.push(`first token ${seconds(m.time_to_first_token_ms)}`);
    this.footer.prepend(el('p', { class: 'metrics', text: parts.join(' · ') }));
    this.state = data.status === 'interrupted' ? 'interrupted' : 'done';
  }

  stopped() {
    this.footer.replaceChildren(el('p', { class: 'note', text: 'Stopped. This turn was not kept.' }));
    this.state = 'stopped';
  }

  error(error, retry) {
    const code = error.code ?? 'error';
    const box = el('div', { class: 'error', role: 'alert', 'data-code': code },
      el('code', { text: code }), ' ', el('span', { text: error.error ?? error.message ?? 'Something went wrong.' }));
    if (error.retryable && retry) {
      const button = el('button', { type: 'button', class: 'retry', text: 'Retry' });
      button.addEventListener('click', () => {
        for (const node of this.runParts) node.remove(); // the failed run's turn was rolled back
        retry();
      });
      box.append(' ', button);
    }
    this.footer.replaceChildren(box);
    this.state = 'error';
  }
}

// --- talking to the agent ------------------------------------------------------------------------------------

function post(body, signal) {
  return fetch(ENDPOINT, {
    method: 'POST', signal, cache: 'no-store',
    headers: { 'Content-Type': 'application/json', Accept: body.stream ? 'text/event-stream' : 'application/json',
      ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });
}

// The catalog's error shape, whatever answered (ours: {"error": {code, message, retryable}}; a proxy's page: not).
async function errorOf(response) {
  return refused(await catalogError(response));
}

async function catalogError(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === 'object') return body.error;
  } catch { /* not JSON */ }
  return { code: `http_${response.status}`, message: response.statusText || 'The request failed.',
    retryable: response.status >= 500 };
}

// Every refusal passes here: one for want of a token asks for it.
function refused(error) {
  if (error.code === 'unauthorized') askForToken(error);
  return error;
}

// --- one WebSocket for everything (`?transport=ws`) ----------------------------------------------------------

// With `?transport=ws` the page sends what it would POST (turns, Stop's cancel, answers, history, status, memories,
// forget) over one socket to /ws (bedrock/server/websocket.py): each message an /invocations payload with a
// `request_id`, which every message answering it carries. A run's messages are its SSE events as JSON, so Follow
// shows them as it shows a stream's. Opt-in while it is new: POSTs stay the default. A socket that cannot open, or
// that drops, leaves the page on POSTs for good (a proxy without WebSocket support would refuse every new one), and
// the page says so once.
//
// With a bearer token (AUTH_MODE=jwt) the socket's first message is `{"authorization": "Bearer …"}` (a browser
// cannot set a handshake's header); the server answers `authenticated`, nobody's. Without one the server refuses
// the first request (401: the page asks for a token) and closes the socket (4401): the page falls back to POSTs.
const WS_OPEN_TIMEOUT_MS = 5000; // a socket still connecting after this long (a proxy holding it) is given up

// The socket went before a request was answered: a broken connection, as fetch's TypeError is.
class SocketGone extends TypeError {}

// The messages answering one request, taken one at a time as they come; a failure reaches the take after the
// messages that came before it (a run's last events are shown before its connection is said to be lost).
class Inbox {
  constructor(id) {
    this.id = id;
    this.messages = [];
    this.waiting = null; // the take waiting for the next message: its {resolve, reject}
    this.failure = null;
  }

  push(message) {
    if (this.waiting) this.waiting.resolve(message);
    else this.messages.push(message);
    this.waiting = null;
  }

  fail(error) {
    this.failure ??= error;
    this.waiting?.reject(this.failure);
    this.waiting = null;
  }

  // At once, what came or not (an aborted fetch stops as soon).
  abort(error) {
    this.messages.length = 0;
    this.fail(error);
  }

  take() {
    if (this.messages.length) return Promise.resolve(this.messages.shift());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
  }
}

// A refusal's data (the error event it would have had: {error, code, retryable, …}) in the catalog's shape as well.
function errorOfMessage(message) {
  return refused({ ...message.data, message: message.data?.error });
}

class SocketTransport {
  constructor(wanted) {
    this.usable = wanted; // false: POSTs (the default, or since the socket failed)
    this.ws = null; // the open socket
    this.opening = null; // the promise of the socket being opened (null: none is)
    this.inboxes = new Map(); // request_id → Inbox: the requests sent and not yet answered in full
    this.requests = 0; // numbers the request ids: unique for the page's life, across sockets
  }

  // The open socket, opened if none is; null once the page is on POSTs.
  connected() {
    if (!this.usable) return Promise.resolve(null);
    if (this.ws) return Promise.resolve(this.ws);
    this.opening ??= this.open().finally(() => { this.opening = null; });
    return this.opening;
  }

  open() {
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`);
      } catch { // refused outright (an older browser's policy check)
        resolve(this.fallBack());
        return;
      }
      let opened = false;
      const timer = setTimeout(() => ws.close(), WS_OPEN_TIMEOUT_MS); // its close event then gives it up
      ws.addEventListener('open', () => {
        opened = true;
        clearTimeout(timer);
        if (bearer) ws.send(JSON.stringify({ authorization: `Bearer ${bearer}` }));
        this.ws = ws;
        resolve(ws);
      });
      ws.addEventListener('message', (event) => this.route(event.data));
      // Every end of a socket comes here (an `error` event is always followed by `close`).
      ws.addEventListener('close', (event) => {
        clearTimeout(timer);
        if (!opened) resolve(this.fallBack());
        else if (this.ws === ws) this.closed(event);
      });
    });
  }

  // The server closes a socket idle for WS_IDLE_TIMEOUT_S (1000, nothing in flight): the next request opens
  // another. Any other end (a restart's 1012, a proxy's cut, a bound) is the transport failing.
  closed(event) {
    this.ws = null;
    if (event.code === 1000 && this.inboxes.size === 0) return;
    this.fallBack();
  }

  // POSTs from now on. The requests still waiting on the socket fail as on a broken connection: an action is then
  // asked again over HTTP, a run re-attached by its Follow. Said once; a notice shown meanwhile is not replaced.
  fallBack() {
    if (this.usable) {
      standingNotice = 'The WebSocket connection to the agent is not available: the page uses HTTP requests.';
      if (ui.notice.hidden) showNotice('');
    }
    this.usable = false;
    const ws = this.ws;
    this.ws = null;
    ws?.close();
    for (const inbox of this.inboxes.values()) inbox.fail(new SocketGone('The WebSocket connection closed.'));
    this.inboxes.clear();
    return null;
  }

  // A message to the request it answers; `authenticated`, and a run's events after its Follow left it, are
  // nobody's. A refusal naming no request (`rate_limited` before the message was read, a token refused) leaves
  // some request unanswered, and which one is unknown: the socket is given up as if it had dropped.
  route(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message?.event === 'error' && message.request_id === undefined) this.fallBack();
    else this.inboxes.get(message?.request_id)?.push(message);
  }

  // `body` sent with a request_id of its own: the Inbox of its answers; null if not sent (the page is on POSTs).
  async send(body) {
    const ws = await this.connected();
    if (!ws || ws !== this.ws) return null; // (closed meanwhile: nothing was sent, HTTP may ask)
    const inbox = new Inbox(`r${(this.requests += 1)}`);
    this.inboxes.set(inbox.id, inbox);
    ws.send(JSON.stringify({ ...body, request_id: inbox.id }));
    return inbox;
  }

  leave(inbox) {
    this.inboxes.delete(inbox.id);
  }

  // An action's answer: {data}, or the catalog's error thrown; null if not answered here (the page is on POSTs,
  // or the socket went first: each action the page sends is safe to ask again, over HTTP).
  async call(body) {
    const inbox = await this.send(body);
    if (!inbox) return null;
    let reply;
    try {
      reply = await inbox.take();
    } catch {
      return null;
    } finally {
      this.leave(inbox);
    }
    if (reply.event === 'error') throw errorOfMessage(reply);
    return { data: reply.data };
  }

  // A run's events, as `openStream` answers; null if not sent here (the page is on POSTs). A socket that goes
  // after the run was sent fails its events as a broken stream: Follow re-attaches (over HTTP) if it knows the run.
  async stream(body, signal) {
    const inbox = await this.send(body);
    if (!inbox) return null;
    // Aborted (Stop could not cancel): the page leaves the run, whose events the server still sends, to nobody.
    const abort = () => inbox.abort(signal.reason ?? new DOMException('Aborted', 'AbortError'));
    signal?.addEventListener('abort', abort, { once: true });
    const leave = () => {
      signal?.removeEventListener('abort', abort);
      this.leave(inbox);
    };
    let first;
    try {
      first = await inbox.take();
    } catch (error) {
      leave();
      throw error;
    }
    if (first.event === 'error' && first.status !== undefined) { // refused, as a 4xx would be: no run started
      leave();
      return { refused: errorOfMessage(first) };
    }
    return { events: socketEvents(first, inbox, leave) };
  }
}

// A run's messages as the events of its stream ({type, data, id}), until its Follow leaves them.
async function* socketEvents(first, inbox, leave) {
  try {
    for (let message = first; ; message = await inbox.take()) {
      if (message.event === 'result') return; // answered as an action is: no run to follow
      yield { type: message.event, data: message.data, id: Number(message.id) };
    }
  } finally {
    leave();
  }
}

const transport = new SocketTransport(new URLSearchParams(window.location.search).get('transport') === 'ws');

// An action's answer: over the socket when the page uses one, else POSTed.
async function ask(body) {
  const answered = transport.usable ? await transport.call(body) : null;
  if (answered) return answered.data;
  const response = await post(body);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// A run's events: over the socket when the page uses one, else POSTed. `{refused}` (the catalog's error: no run
// started), or `{events}`: an async iterator of {type, data, id} that ends where the stream does.
async function openStream(body, signal) {
  const viaSocket = transport.usable ? await transport.stream(body, signal) : null;
  if (viaSocket) return viaSocket;
  const response = await post(body, signal);
  if (!response.ok) return { refused: await errorOf(response) };
  return { events: sseEvents(response) };
}

// An event stream's frames as events; leaving it early cancels the response's body.
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield { type: value.event, data: JSON.parse(value.data), id: Number(value.id) };
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

async function action(body) {
  return ask({ ...body, session_id: sessionId });
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// One run followed to its terminal event, across dropped connections: a stream that breaks after the run
// started is re-attached with `resume` from the last event id seen, and events already shown are skipped.
class Follow {
  constructor(view, body) {
    this.view = view;
    this.body = body; // what started it (a prompt or a decision): Retry sends it again
    this.runId = null;
    this.lastId = 0;
    this.controller = new AbortController();
    this.stopping = false;
  }

  async run() {
    active = this;
    setBusy(true);
    this.view.startRun();
    this.view.state = 'streaming';
    try {
      let request = { ...this.body, session_id: sessionId, stream: true };
      for (let attempt = 0; ; attempt += 1) {
        let ended;
        try {
          ended = await this.read(request);
        } catch (error) {
          if (error?.name === 'AbortError') return; // Stop could not cancel: the view says why
          if (this.stopping) { // the stream broke while stopping: the run was asked to end
            if (this.view.answer.dataset.state === 'streaming') {
              this.view.stopped();
              if (this.body.resume) showPending(this.view);
            }
            return;
          }
          ended = false; // the connection broke (TypeError: network error)
        }
        if (ended) return;
        if (!this.runId || attempt >= RECONNECTS) {
          this.view.error({ code: 'connection_lost', message: 'The connection to the agent was lost.',
            retryable: !this.runId }, () => start(this.view, this.body));
          return;
        }
        showNotice('Connection lost; re-attaching to the run…');
        await sleep(BACKOFF_MS * 2 ** attempt);
        request = { action: 'resume', session_id: sessionId, run_id: this.runId, last_event_id: this.lastId,
          stream: true };
      }
    } finally {
      showNotice('');
      if (active === this) { // else a queued run is next, and the page stays busy
        active = null;
        setBusy(false);
      }
    }
  }

  // True once the run's terminal event (or a refusal) is shown; false if the stream ended without one.
  async read(request) {
    const opened = await openStream(request, this.controller.signal);
    if (opened.refused) {
      this.view.error(opened.refused, () => start(this.view, this.body));
      return true;
    }
    showNotice('');
    for await (const { type, data, id } of opened.events) {
      if (id && id <= this.lastId) continue; // already shown before a drop
      if (id) this.lastId = id;
      if (this.handle(type, data)) return true;
    }
    return false;
  }

  // Show one event; true if it ends the run.
  handle(type, data) {
    const view = this.view;
    switch (type) {
      case 'agent_start':
        this.runId = data.run_id;
        if (this.stopping) this.cancel();
        return false;
      case 'agent_step':
        if (data.type === 'human') view.human(data);
        else if (data.type === 'input') view.input(data);
        else if (data.type === 'ai') view.ai(data);
        else if (data.type === 'tool') view.toolResult(data);
        else if (data.type === 'resume') view.resumed(data);
        else if (data.type === 'update') view.update(data);
        return false;
      case 'llm_token':
        view.token(data);
        return false;
      case 'custom':
        view.progress(data);
        return false;
      case 'interrupt':
        view.interrupt(data, (decision) => start(view, { resume: decision, stream_tokens: true }));
        return false;
      case 'agent_end':
        view.end(data);
        memoriesMayHaveChanged(); // a kept turn's memories are written before its agent_end
        return true;
      case 'error':
        if (data.code === 'cancelled') view.stopped();
        else view.error(data, () => start(view, this.body));
        // A run that answered an interrupt was rolled back: the graph waits for that answer again.
        if (this.body.resume) showPending(view);
        return true;
      default:
        return false; // an event type added later: ignored, as the wire contract allows
    }
  }

  // Stop: the server cancels the run (and rolls its turn back); its stream then ends with `cancelled`.
  async stop() {
    this.stopping = true;
    if (this.runId) await this.cancel();
  }

  async cancel() {
    try {
      await action({ action: 'cancel', run_id: this.runId });
    } catch (error) {
      if (error.code === 'no_active_run') return; // it ended meanwhile: its last event is on its way
      this.view.error(error, null); // the run goes on; this page stops following it
      this.controller.abort();
    }
  }
}

// Runs are followed one after another: an approval answered before its run's last event starts the next run
// once that one has ended.
let queue = Promise.resolve();

function start(view, body) {
  const follow = new Follow(view, body);
  active = follow; // from now on a send waits (and Stop applies to it)
  setBusy(true);
  queue = queue.then(() => follow.run());
  return queue;
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
  ui.newChat.disabled = busy;
  if (!busy && document.activeElement === ui.stop) ui.prompt.focus();
}

// --- the conversation so far ---------------------------------------------------------------------------------

// What the session waits for, shown again in `view` (after a run that answered it was stopped or failed).
async function showPending(view) {
  let history;
  try {
    history = await action({ action: 'history' });
  } catch {
    return; // the error shown says enough; a reload asks again
  }
  for (const pending of history.pending) {
    view.interrupt(pending, (decision) => start(view, { resume: decision, stream_tokens: true }));
  }
}

async function loadConversation() {
  ui.log.replaceChildren();
  ui.session.textContent = sessionId;
  let history;
  try {
    history = await action({ action: 'history' });
  } catch (error) {
    showNotice(`Could not load this session (${error.code ?? 'error'}): ${error.message ?? ''}`);
    return;
  }
  if (history.truncated) showNotice('Showing the newest messages of this session.');
  let view = null;
  for (const message of history.messages) {
    if (message.type === 'human' || !view) view = new TurnView(message.type === 'human' ? message.content : '');
    if (message.type === 'ai') view.ai(message);
    else if (message.type === 'tool') view.toolResult(message);
    view.state = 'done';
  }
  for (const pending of history.pending) {
    view ??= new TurnView('');
    view.state = 'interrupted';
    view.interrupt(pending, (decision) => start(view, { resume: decision, stream_tokens: true }));
  }
  // A run still going (this page was reloaded, or closed, mid-answer): follow it from its first event.
  if (history.run?.state === 'running' && !active) {
    start(new TurnView(null), { action: 'resume', run_id: history.run.run_id, last_event_id: 0 });
  }
}

// --- what the agent remembers about the actor ----------------------------------------------------------------

const MEMORY_PAGE = 100; // the most one `memories` request lists
const MEMORY_PAGES = 5; // the panel lists this many pages at most, then says there are more

let memoryRefreshes = 0; // numbers the refreshes: one that answers after a newer one is not shown

// `memories` and `forget` belong to the actor, not to a session: they name none. The page names no actor either,
// so they are the same actor's whose turns it runs (the server's default).
function memoryAction(body) {
  return ask(body);
}

async function loadMemories() {
  const memories = [];
  let offset = 0;
  for (let page = 0; page < MEMORY_PAGES && offset != null; page += 1) {
    const answer = await memoryAction({ action: 'memories', limit: MEMORY_PAGE, offset });
    memories.push(...(answer.memories ?? []));
    offset = answer.next_offset ?? null;
  }
  return { memories, more: offset != null };
}

async function refreshMemories() {
  const refresh = (memoryRefreshes += 1);
  let found;
  try {
    found = await loadMemories();
  } catch (error) {
    if (refresh === memoryRefreshes) memoriesFailed(error);
    return;
  }
  if (refresh !== memoryRefreshes) return;
  showMemoryError(null);
  ui.memoryList.replaceChildren(...found.memories.map(memoryItem));
  ui.memoryEmpty.hidden = found.memories.length > 0;
  ui.memoryMore.textContent = found.more ? `Showing the first ${found.memories.length}; there are more.` : '';
  ui.memoryMore.hidden = !found.more;
  ui.forgetAll.disabled = found.memories.length === 0;
}

// Refreshed after each turn only while the panel shows: opening it refreshes it anyway.
function memoriesMayHaveChanged() {
  if (!ui.memories.hidden) refreshMemories();
}

// A memory as one line: the built-in agent keeps its fact as `text`; a user's graph may store any value.
function memoryText(value) {
  return typeof value?.text === 'string' ? value.text : compact(value);
}

function memoryItem(memory) {
  const text = memoryText(memory.value);
  const forget = el('button', { type: 'button', class: 'forget', text: '×', title: 'Forget this',
    'aria-label': `Forget: ${shorten(text, 80)}` });
  forget.addEventListener('click', () => forgetMemories({ key: memory.key, namespace: memory.namespace }, forget));
  return el('li', { class: 'memory', title: memory.key, 'data-key': memory.key },
    el('span', { class: 'memory-text', text }), forget);
}

async function forgetMemories(target, button) {
  button.disabled = true;
  try {
    await memoryAction({ action: 'forget', ...target });
  } catch (error) {
    // Already gone (forgotten from another tab): the refresh shows as much; nothing went wrong.
    if (error?.code !== 'memory_not_found') {
      memoriesFailed(error);
      button.disabled = false;
      return;
    }
  }
  await refreshMemories();
}

function memoriesFailed(error) {
  if (error?.code === 'long_term_memory_off') { // this server keeps no memories: nothing to open
    setMemoriesOpen(false);
    ui.memoriesToggle.hidden = true;
    return;
  }
  showMemoryError(error);
}

function showMemoryError(error) {
  if (!error) {
    ui.memoryError.replaceChildren();
    ui.memoryError.hidden = true;
    return;
  }
  const code = error.code ?? 'error';
  ui.memoryError.dataset.code = code;
  ui.memoryError.replaceChildren(el('code', { text: code }), ' ',
    el('span', { text: error.message ?? error.error ?? 'Something went wrong.' }));
  ui.memoryError.hidden = false;
}

function setMemoriesOpen(open) {
  ui.memories.hidden = !open;
  ui.memoriesToggle.setAttribute('aria-expanded', String(open));
  if (open) refreshMemories();
}

// --- wiring --------------------------------------------------------------------------------------------------

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const prompt = ui.prompt.value;
  if (!prompt.trim() || active) return;
  ui.prompt.value = '';
  // A prompt sent while a tool approval waits declines it (the server does so): its card goes. Any other graph's
  // question stays: that graph refuses a prompt until it is answered (interrupt_pending).
  for (const card of ui.log.querySelectorAll('.approval')) card.remove();
  start(new TurnView(prompt), { prompt, stream_tokens: true });
});

ui.prompt.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.stop.addEventListener('click', () => { active?.stop(); });

ui.newChat.addEventListener('click', () => {
  if (active) return;
  sessionId = newSessionId();
  saveSession(sessionId);
  showNotice('');
  loadConversation();
  ui.prompt.focus();
});

ui.memoriesToggle.addEventListener('click', () => setMemoriesOpen(ui.memories.hidden));

ui.forgetAll.addEventListener('click', () => {
  if (!window.confirm('Forget everything the agent remembers about you? This cannot be undone.')) return;
  forgetMemories({ all: true }, ui.forgetAll);
});

ui.send.disabled = false;
loadConversation();
refreshMemories(); // at once, while closed: a server that keeps no memories hides the button before it is used
