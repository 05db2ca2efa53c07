// Class polls: the teacher (whoever may control the shared run) puts the lesson's question on
// every viewer's screen; each viewer answers once, anonymously; the teacher watches the count
// and reveals the answer, computed from the shared run. The poll is held by the server's
// engine; this page only shows it (poll-view.js) and sends what is clicked.
import { createPollView } from "./poll-view.js";

export function createPolls({ store, connection, request, ask, $ }, { currentStep, steps }) {
  const openButton = $("poll-open");
  let control = false;
  let answered = {}; // poll id -> the choice this page gave
  let poll = null; // as every viewer sees it
  let results = null; // as the teacher sees it (with the counts)
  let dismissed = null; // "id/status" of the poll this viewer hid: a new poll or the reveal shows again
  const pollKey = (p) => (p ? `${p.id}/${p.status}` : null);

  const view = createPollView($("poll"), {
    onChoose: async (choice) => {
      if (!poll) return;
      const id = poll.id;
      const answer = await ask("poll:answer", { poll: id, choice });
      if (answer.ok) answered = { ...answered, [id]: choice };
      render();
    },
    onReveal: async () => {
      const pixels = store.get().answer?.input?.map((v) => Math.min(1, Math.max(0, v)));
      await ask("poll:reveal", pixels ? { pixels } : undefined);
    },
    onClose: () => ask("poll:close"),
    onDismiss: () => { dismissed = pollKey(poll); render(); },
  });

  function render() {
    const list = steps();
    const step = list?.[currentStep() - 1];
    openButton.hidden = !control;
    openButton.disabled = !step || step.choices.length === 0;
    openButton.title = step && step.choices.length === 0
      ? "This step asks for a number: a class poll needs choices (ask it aloud)" : "Put this question on every viewer's screen";
    const onScreen = poll && pollKey(poll) !== dismissed ? poll : null;
    view.show(onScreen, { control, results: results && poll && results.id === poll.id ? results : null, answered: poll ? answered[poll.id] : undefined });
    store.set({ poll });
  }

  openButton.addEventListener("click", async () => {
    const answer = await ask("poll:open", { step: currentStep() });
    if (answer.ok) { results = answer.poll; }
    render();
  });
  connection.on("access", ({ control: allowed }) => { control = Boolean(allowed); render(); });
  connection.on("poll", ({ poll: next }) => { poll = next; if (!next) results = null; render(); });
  connection.on("poll:results", ({ poll: next }) => { results = next; render(); });
  return { render };
}
