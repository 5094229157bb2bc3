// The observer's public API, as any client calls it: JSON in and out, errors as {title, errorCode, message}.

const TIMEOUT_MS = 30000;
let tokenSource = () => null;
let onUnauthorized = () => {};

/** Where bearer tokens come from (auth.js), and what to do on a 401 (sign in again). */
export function configureAuth(source, unauthorized) {
  tokenSource = source;
  onUnauthorized = unauthorized;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `the observer answered ${status}`);
    this.status = status;
    this.code = body && body.errorCode ? body.errorCode : "";
  }
}

function headers(json) {
  const result = { Accept: "application/json" };
  if (json) result["Content-Type"] = "application/json";
  const token = tokenSource();
  if (token) result.Authorization = `Bearer ${token}`;
  return result;
}

async function call(method, path, body, signal) {
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: `the observer answered ${response.status} with a body that is not JSON` };
  }
  if (response.status === 401) onUnauthorized();
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export const post = (path, body, signal) => call("POST", path, body, signal);
export const get = (path, signal) => call("GET", path, undefined, signal);
export const put = (path, body, signal) => call("PUT", path, body, signal);

/** True if the server has the route (an extension another observer may lack): anything but a 404/405. */
export async function hasRoute(method, path, body) {
  try {
    await call(method, path, body);
    return true;
  } catch (error) {
    return !(error instanceof ApiError && (error.status === 404 || error.status === 405));
  }
}

/**
 * Server-sent events from a POST (EventSource can only GET and cannot send a bearer token): fetch, then read
 * the stream, one event per blank-line-separated block. Calls onEvent({event, data}) with data parsed as JSON.
 * Resolves when the stream ends or `signal` aborts; rejects with ApiError when the request is refused.
 */
export async function streamEvents(path, body, signal, onEvent) {
  const response = await fetch(path, {
    method: "POST",
    headers: { ...headers(true), Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, parsed);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      if (buffer.length > 4 * 1024 * 1024) throw new Error("a live tail event is larger than 4 MiB");
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const event = parseEvent(block);
        if (event) onEvent(event);
      }
    }
  } catch (error) {
    if (!(signal && signal.aborted)) throw error;
  } finally {
    reader.releaseLock();
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue; // a comment: keep-alive
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}
