// The chat page: one session's conversation, streamed from POST /invocations.
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
const RECONNECTS = 5; // re-attach a dropped stream this many times (backoff 0.25 s … 4 s) before giving up
const BACKOFF_MS = 250;

const byId = (id) => document.getElementById(id);
const ui = {
  log: byId('log'), form: byId('composer'), prompt: byId('prompt'), send: byId('send'), stop: byId('stop'),
  newChat: byId('new-chat'), session: byId('session-id'), notice: byId('notice'),
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

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

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

  textBlock(step) {
    let block = this.blocks.get(step);
    if (!block) {
      block = this.add(el('p', { class: 'text answer' }));
      this.blocks.set(step, block);
    }
    return block;
  }

  human(data) {
    if (!this.userText.textContent) this.userText.textContent = data.content ?? '';
  }

  token(data) {
    this.textBlock(data.step ?? 0).append(data.token ?? '');
    scrollToEnd();
  }

  ai(data) {
    const text = data.content ?? '';
    if (text) this.textBlock(data.step).textContent = text; // the whole message: what the tokens added up to
    else this.blocks.get(data.step)?.remove();
    for (const call of data.tool_calls ?? []) this.toolCall(call);
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

  resumed(data) {
    this.add(el('p', { class: 'note', text: `Tool call ${data.content}.` }));
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
    const focusIsFree = !document.activeElement || document.activeElement === document.body
      || document.activeElement === ui.prompt;
    if (focusIsFree) approve.focus(); // keyboard users land on the decision
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
    headers: { 'Content-Type': 'application/json', Accept: body.stream ? 'text/event-stream' : 'application/json' },
    body: JSON.stringify(body),
  });
}

// The catalog's error shape, whatever answered (ours: {"error": {code, message, retryable}}; a proxy's page: not).
async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === 'object') return body.error;
  } catch { /* not JSON */ }
  return { code: `http_${response.status}`, message: response.statusText || 'The request failed.',
    retryable: response.status >= 500 };
}

async function action(body) {
  const response = await post({ ...body, session_id: sessionId });
  if (!response.ok) throw await errorOf(response);
  return response.json();
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
            if (this.view.answer.dataset.state === 'streaming') this.view.stopped();
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
    const response = await post(request, this.controller.signal);
    if (!response.ok) {
      const error = await errorOf(response);
      this.view.error(error, () => start(this.view, this.body));
      return true;
    }
    showNotice('');
    const events = response.body.pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream());
    const reader = events.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        const id = Number(value.id);
        if (id && id <= this.lastId) continue; // already shown before a drop
        if (id) this.lastId = id;
        if (this.handle(value.event, JSON.parse(value.data))) return true;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
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
        else if (data.type === 'ai') view.ai(data);
        else if (data.type === 'tool') view.toolResult(data);
        else if (data.type === 'resume') view.resumed(data);
        return false;
      case 'llm_token':
        view.token(data);
        return false;
      case 'interrupt':
        view.approval(data, (decision) => start(view, { resume: decision, stream_tokens: true }));
        return false;
      case 'agent_end':
        view.end(data);
        return true;
      case 'error':
        if (data.code === 'cancelled') view.stopped();
        else view.error(data, () => start(view, this.body));
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
    view.approval(pending, (decision) => start(view, { resume: decision, stream_tokens: true }));
  }
  // A run still going (this page was reloaded, or closed, mid-answer): follow it from its first event.
  if (history.run?.state === 'running' && !active) {
    start(new TurnView(null), { action: 'resume', run_id: history.run.run_id, last_event_id: 0 });
  }
}

// --- wiring --------------------------------------------------------------------------------------------------

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const prompt = ui.prompt.value;
  if (!prompt.trim() || active) return;
  ui.prompt.value = '';
  // A prompt sent while an approval waits declines it (the server does so): its card goes.
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

ui.send.disabled = false;
loadConversation();
