// Reads a number as people write it: "200,960", "200 960", "200960", "2e5", "-0.81", "-0,81"
// (a decimal comma), "784*256+256", "784 × 256 + 256", "(784 + 1) · 256". A small parser of its
// own (numbers, + − × · * / ÷ ^ and parentheses), never eval: what a learner types is text, not
// code. Answers {value} or {error} (in words).

const TIMES = new Set(["*", "×", "·", "x", "X"]);
const DIVIDE = new Set(["/", "÷"]);
// A digit group separator inside a number: a space (also the no-break and thin ones), an
// apostrophe (1'000 in Switzerland) or an underscore (Python's 200_960).
const GROUP = "[ \\u00a0\\u202f'’_]";
const NUMBER = new RegExp(`^(?:\\d(?:\\d|${GROUP}(?=\\d)|[.,](?=\\d))*|[.,]\\d+)(?:[eE][+-]?\\d+)?`);

// One written number ("200,960", "1 000.5", "-0,81" without its sign) as its value, or null.
function numberValue(raw) {
  let [, body, exponent = ""] = raw.match(/^(.*?)([eE][+-]?\d+)?$/);
  if (new RegExp(GROUP).test(body)) {
    // Grouped by spaces (or ' or _): the groups after the first have three digits each.
    if (!new RegExp(`^\\d{1,3}(?:${GROUP}\\d{3})+(?:[.,]\\d+)?$`).test(body)) return null;
    body = body.replace(new RegExp(GROUP, "g"), "");
  }
  const commas = (body.match(/,/g) || []).length;
  const dots = (body.match(/\./g) || []).length;
  if (commas && dots) {
    // Both: whichever comes last is the decimal mark ("200,960.5" or "200.960,5").
    const decimal = body.lastIndexOf(",") > body.lastIndexOf(".") ? "," : ".";
    const group = decimal === "," ? "." : ",";
    const [whole, fraction] = [body.slice(0, body.lastIndexOf(decimal)), body.slice(body.lastIndexOf(decimal) + 1)];
    if (!new RegExp(`^[1-9]\\d{0,2}(?:\\${group}\\d{3})+$`).test(whole) || fraction.includes(group)) return null;
    body = `${whole.split(group).join("")}.${fraction}`;
  } else if (commas) {
    // "200,960" and "1,234,567" group thousands; "0,81" and "3,5" are decimal commas.
    if (/^[1-9]\d{0,2}(?:,\d{3})+$/.test(body)) body = body.replace(/,/g, "");
    else if (commas === 1) body = body.replace(",", ".");
    else return null;
  } else if (dots > 1) {
    // "200.960.000": dots grouping thousands.
    if (!/^[1-9]\d{0,2}(?:\.\d{3})+$/.test(body)) return null;
    body = body.replace(/\./g, "");
  }
  const value = Number(body + exponent);
  return Number.isFinite(value) ? value : null;
}

function tokenize(text) {
  const tokens = [];
  let rest = text.replace(/[−–]/g, "-").replace(/\*\*/g, "^").trim();
  while (rest) {
    const space = rest.match(/^\s+/);
    if (space) { rest = rest.slice(space[0].length); continue; }
    const number = rest.match(NUMBER);
    if (number) {
      const value = numberValue(number[0]);
      if (value == null) return { error: `“${number[0]}” is not a number I can read: write it as 200960, 200,960 or 200 960.` };
      tokens.push({ number: value, text: number[0] });
      rest = rest.slice(number[0].length);
      continue;
    }
    const symbol = rest[0];
    if ("+-()^".includes(symbol) || TIMES.has(symbol) || DIVIDE.has(symbol)) {
      tokens.push({ symbol: TIMES.has(symbol) ? "*" : DIVIDE.has(symbol) ? "/" : symbol });
      rest = rest.slice(1);
      continue;
    }
    return { error: `“${symbol}” is not part of a number: use digits, and + − × / ( ) if you like (e.g. 784*256+256).` };
  }
  return { tokens };
}

// expression := term (("+" | "-") term)*; term := unary (("*" | "/") unary)*;
// unary := ("+" | "-") unary | power; power := atom ("^" unary)?; atom := number | "(" expression ")"
function parse(tokens) {
  let at = 0;
  const peek = () => tokens[at];
  const isSymbol = (symbol) => peek()?.symbol === symbol;
  const fail = (words) => { throw new Error(words); };

  function atom() {
    const token = peek();
    if (!token) fail("it ends too soon: something is missing after the last sign.");
    if (token.number != null) { at += 1; return token.number; }
    if (isSymbol("(")) {
      at += 1;
      const value = expression();
      if (!isSymbol(")")) fail("a “(” is not closed.");
      at += 1;
      return value;
    }
    return fail(`“${token.symbol}” cannot stand there.`);
  }
  function power() {
    const base = atom();
    if (!isSymbol("^")) return base;
    at += 1;
    return base ** unary();
  }
  function unary() {
    if (isSymbol("-")) { at += 1; return -unary(); }
    if (isSymbol("+")) { at += 1; return unary(); }
    return power();
  }
  function term() {
    let value = unary();
    while (isSymbol("*") || isSymbol("/")) {
      const divide = isSymbol("/");
      at += 1;
      const right = unary();
      if (divide && right === 0) fail("it divides by zero.");
      value = divide ? value / right : value * right;
    }
    return value;
  }
  function expression() {
    let value = term();
    while (isSymbol("+") || isSymbol("-")) {
      const minus = isSymbol("-");
      at += 1;
      value = minus ? value - term() : value + term();
    }
    return value;
  }

  const value = expression();
  if (at < tokens.length) {
    const token = peek();
    fail(token.number != null ? `two numbers with no sign between them (before “${token.text}”).`
      : `“${token.symbol}” cannot stand there.`);
  }
  return value;
}

export function readNumber(text) {
  const written = String(text ?? "").trim();
  if (!written) return { error: "Type a number first." };
  if (written.length > 200) return { error: "That is too long for a number (200 characters at most)." };
  const { tokens, error } = tokenize(written);
  if (error) return { error };
  try {
    const value = parse(tokens);
    if (!Number.isFinite(value)) return { error: "That comes out too large to be a number." };
    // Worked out (784*256+256) rather than written out (-0.81): the page then says what it makes.
    const calculated = tokens.length > 2 || (tokens.length === 2 && tokens[0].symbol !== "-" && tokens[0].symbol !== "+");
    return { value, calculated };
  } catch (err) {
    return { error: `I cannot read “${written}” as a number: ${err.message}` };
  }
}

// A number as the page writes it: 200,960 (grouped), -0.8133 (up to 6 decimals, no trailing zeros).
export function writtenNumber(value) {
  return Number.isInteger(value) ? value.toLocaleString("en-US")
    : value.toLocaleString("en-US", { maximumFractionDigits: 6 });
}
