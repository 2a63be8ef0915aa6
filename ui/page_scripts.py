"""Scripts the page runs itself: keyboard shortcuts, files dropped, the page state of Run, Stop
and Propose, scrolling, and the page's clock that the server compares events by (`ui.layout`
wires them)."""

from __future__ import annotations

import json

from ui.answer_view import NO_REASONING
from ui.boxes import BOXES_FILE_TYPES
from ui.scrolling import SCROLLING
from ui.status import ANSWERED

WITH_PAGE_TIME = "(...inputs) => [...inputs.slice(0, -1), Date.now()]"
"""The page-side step of Run, Stop, Propose, a box edit and a new image: their last input becomes
the page's clock, so the server can tell a Stop, a box edit or a new image that came after a
click still waiting in the queue (`Handlers.stop`, `Handlers.supersede`, `Handlers.propose`)."""

KEYS_AND_TURNS = """() => {
    const click = (id) => document.querySelector(id)?.click();
    const page = document.body.classList;
    // A question asked while one is on its way is kept; not the same ask again (a double
    // click, a held key, a click just after the one that asked). Once Stop was pressed, any.
    const keep = (again) => {
        const doubled = again || Date.now() - (window.fo1AskedAt ?? 0) < 500;
        if (page.contains("fo1-stopping") || (page.contains("fo1-busy") && !doubled)) {
            page.add("fo1-run-next");
        }
    };
    addEventListener("keydown", (event) => {
        // A held Enter asks once: Gradio's own field (and a focused Run button) would ask again
        // at each repeat.
        const held = event.repeat && ["Enter", " "].includes(event.key);
        if (held && event.target.closest("#fo1-text textarea, #fo1-run")) {
            event.preventDefault();
            event.stopPropagation();
        }
        // Gradio's dropdowns (6.31) take a Tab for typed text once they have closed on losing
        // the focus, and open their list again over the next field: it is kept from them.
        if (event.key === "Tab" && event.target.matches("input[role=combobox]")) {
            event.stopPropagation();
            // A list taller than the room under it scrolls, and Chromium tabs into a scroller:
            // the list took the focus, then closed on losing it, leaving it nowhere.
            const list = event.target.getAttribute("aria-controls");
            document.getElementById(list)?.setAttribute("tabindex", "-1");
        }
    }, true);
    addEventListener("input", (event) => {
        // The question kept is the one asked: edited, it must be asked again to be kept.
        if (event.target.closest("#fo1-text, #fo1-free")) page.remove("fo1-run-next");
    }, true);
    addEventListener("keydown", (event) => {
        const asking = event.key === "Enter" && event.target.closest("#fo1-text textarea");
        if (asking) keep(event.repeat || event.shiftKey);
        // Where keys type (a ticked region's box or a slider takes no letters).
        const field = event.target.closest("textarea, select, [contenteditable], "
            + "input:not([type=checkbox], [type=radio], [type=range], [type=button])");
        const tool = {c: "Create box", d: "Drag boxes"}[event.key?.toLowerCase()];
        const modified = event.ctrlKey || event.metaKey || event.altKey;
        if (tool && !modified && !field) {
            click(`#fo1-editor button[aria-label='${tool}']`);
            return;
        }
        if (!(event.ctrlKey || event.metaKey) || event.shiftKey) return;
        if (event.key === "Enter" && field?.closest("#fo1-free")) {
            event.preventDefault();
            if (!event.repeat) click("#fo1-run");
        } else if (event.key?.toLowerCase() === "z" && !field) {
            event.preventDefault();
            click("#fo1-undo");
        }
    });
    addEventListener("click", (event) => {
        if (event.target.closest("#fo1-editor button[aria-label^='Rotate']")) {
            setTimeout(() => click("#fo1-turned"), 50);  // once the editor has turned
        } else if (event.target.closest("#fo1-run")) {
            keep(event.detail > 1);
        } else if (event.target.closest("#fo1-page-note")) {
            page.remove("fo1-run-next");  // a click on its note (`STATUS_NOTES`)
        }
    }, true);
}"""
"""Installed once in the page: Ctrl+Enter (⌘↩) in the free prompt asks, as Enter does in the
one-line fields; Ctrl+Z (⌘Z) outside text fields (where it undoes typing) undoes the last box
edit; C and D outside text fields pick the editor's box and hand tools, as they do in the editor
once it has the focus (which it keeps to itself then); turning the image with the editor's
buttons reports its turned boxes (`turned`); a question asked (Run, Enter in the task's text
field, Ctrl+Enter in the free prompt) while the page's answer is on its way or ending is kept
(`IDLE` asks it then; a click on its note, editing it, another task or image forget it); a
dropdown's list closes as Tab leaves it."""

SHOW_THE_ANSWER = """() => {
    // What stands just above the answer (the conversation, the status), in the page before it.
    const bottom = Math.max(...["#fo1-conversation-tools", "#fo1-history", "#fo1-status"].map(
        (id) => document.querySelector(id)?.getBoundingClientRect().bottom ?? 0));
    if (bottom > 0.6 * innerHeight) {
        const run = document.querySelector("#fo1-run").getBoundingClientRect().top;
        const top = bottom - run <= 0.5 * innerHeight ? run : bottom - 0.15 * innerHeight;
        scrollBy({top, behavior: SCROLLING});
    }
}""".replace("SCROLLING", SCROLLING)
"""Where the answer would stream in below the window (a laptop's screen, a phone), scrolls to put
Run at the top, the status and answer under it; where the answer would then start in the
window's lower half (a phone held sideways, a long conversation), what stands above the answer
scrolls out instead, but for its last lines: the answer is what was asked for."""

REASONING_SHOWN = f"""(html) => document.body.classList.toggle(
    "fo1-reasoned", Boolean(html) && !html.includes("{NO_REASONING}")
)"""
"""The reasoning pane changed: its accordion is shown (`app_css`) only while it holds reasoning.
Read from the value, not the pane: a closed accordion does not render what it holds."""

FORGET_THE_KEPT_QUESTION = 'document.body.classList.remove("fo1-run-next")'
"""Another image or task: a question kept for later (`KEYS_AND_TURNS`) is no longer the one to
ask."""

QUESTION_EDITED = 'document.body.classList.add("fo1-question-edited")'
"""The task, its text, its regions or the free prompt changed: a refusal of the question as it
was (`ui.status.REFUSED`) is hidden (`app_css`) until the next question has its reply
(`IDLE`), which may be the same refusal again: the same words, which Gradio does not draw anew. A
change of the boxes takes it away on the server (`Handlers.boxes_changed`)."""

WATCH_THE_QUESTION = f"""() => addEventListener("input", (event) => {{
    if (event.target.closest?.("#fo1-question")) {QUESTION_EDITED};
}}, true)"""
"""Installed once in the page: what the user types or ticks in the question is `QUESTION_EDITED`
(a task picked from its list is too, by its change event). Not a field's `change`, which a
text field sends as it loses the focus, after the Enter that asked."""


ANSWER_AREA_CLEARING = "window.fo1Clearing = (window.fo1Clearing ?? 0) + 1"
"""Page-side, as another image comes: the answer area is to be cleared for it (`CLEARED`)."""
ANSWER_AREA_CLEARED = """() => {
    window.fo1Clearing -= 1;
    dispatchEvent(new Event("fo1-cleared"));
}"""
"""Page-side, once the server has cleared the answer area for another image: `fo1Clearing`
counts the clearings still on their way, which `ui.editor.EMPTY_IF_UNREADABLE` waits out."""


STREAMED_PAST_AS_NONE = """(...values) => values.map((value) =>
    value?.__type__ === "update" && "url" in value && !("path" in value) ? null : value)"""
"""Page-side, for an event that reads the answer area: the result image of an answer streaming
holds, between drawings (`gr.skip()`), what Gradio left of the last one, an update with the
file's address but not its path, and Gradio refused the whole event with a toast, "The file is
not an image this app can read", as a new image came. The area of an answer streaming is not
kept in any case (`AnswerLeft.kept`)."""


def page_step(statement: str) -> str:
    """A page-side step that runs `statement`, then adds the page's clock (`WITH_PAGE_TIME`)."""
    return f"(...inputs) => {{ {statement}; return ({WITH_PAGE_TIME})(...inputs); }}"


PROPOSING = page_step('document.body.classList.add("fo1-proposing")')
"""Propose's page-side step: its button says it is on its way (its progress shows on the status,
which an answer streaming there may fill) until `PROPOSED`."""

SHOW_A_PROBLEM = """() => requestAnimationFrame(() => {
    const problem = document.querySelector("#fo1-status .fo1-error");
    const place = problem?.getBoundingClientRect();
    if (place && (place.top > innerHeight || place.bottom < 0)) {
        problem.scrollIntoView({block: "center", behavior: SCROLLING});
    }
})""".replace("SCROLLING", SCROLLING)
"""After Propose or Set these boxes, brings a problem they report into view: on a phone the
status sits far below their buttons, and they seemed to do nothing."""

SHOW_THE_BOXES = """() => requestAnimationFrame(() => {
    if (document.querySelector("#fo1-status .fo1-error")) return;  // `SHOW_A_PROBLEM`'s
    const place = document.querySelector("#fo1-editor")?.getBoundingClientRect();
    if (!place) return;
    const seen = Math.min(place.bottom, innerHeight) - Math.max(place.top, 0);
    if (seen < Math.min(place.height, innerHeight) / 3) {
        document.querySelector("#fo1-editor").scrollIntoView({block: "start", behavior: SCROLLING});
    }
})""".replace("SCROLLING", SCROLLING)
"""After Propose or Set these boxes, brings the image into view where its new boxes are mostly out
of it: on a phone the image is a screen above their buttons, and they seemed to do nothing."""

SHOW_THE_OUTCOME = f"""() => {{
    ({SHOW_A_PROBLEM})();
    ({SHOW_THE_BOXES})();
}}"""
"""After Propose or Set these boxes: the problem they report, else the boxes they set."""

PROPOSED = f"""() => {{
    document.body.classList.remove("fo1-proposing");
    ({SHOW_THE_OUTCOME})();
}}"""

ASK = page_step(
    f"""document.body.classList.remove("fo1-stopping", "fo1-run-next");
    document.body.classList.add("fo1-busy", "fo1-asking");
    window.fo1AskedAt = Date.now();
    window.fo1ReadingAt = null;
    inputs[inputs.length - 2] = document.querySelector("#fo1-result")?.clientWidth || null;
    ({SHOW_THE_ANSWER})()"""
)
"""Run's page-side step: marks the page as waiting for its answer (`app_css` dims Run, `IDLE`
ends it), shows where the answer comes, and adds the result panel's width (its labels are drawn
to be read there: `Handlers.run`) and the click's time (`WITH_PAGE_TIME`). In the
run's own step, not a listener of its own: Gradio starts a page-only listener of the same click
after the answer has ended."""

IDLE = """() => {
    const page = document.body.classList;
    page.remove("fo1-busy", "fo1-asking", "fo1-stopping", "fo1-question-edited");
    if (page.contains("fo1-run-next")) {
        page.remove("fo1-run-next");
        document.querySelector("#fo1-run")?.click();
    }
}"""
"""The page's question has ended: Run is itself again, and asks if it was clicked (or Enter
asked) while that answer was on its way (Gradio drops a click on a button whose last run has not
ended, and the page would not say so). The status is this question's: none of it is hidden as
about a question edited since (`QUESTION_EDITED`)."""

STOPPING = """() => {
    const page = document.body.classList;
    if (page.contains("fo1-busy")) page.add("fo1-stopping");
    else page.remove("fo1-run-next");
    page.remove("fo1-busy");
}"""
"""Stop: Run is itself again at once, and a question asked before the answer has ended (before
or after this Stop) is kept for `IDLE`; a second Stop forgets it. `fo1-asking` stays until then:
the stopped answer has taken the place of the one before it (see `app_css`)."""

ANSWER_PANEL = "#fo1-answer .fo1-answer"
HISTORY_PANEL = "#fo1-history .fo1-history"

FOLLOWING_THE_ANSWER = """() => {
    addEventListener("scroll", (event) => {
        const panel = event.target;
        if (!(panel instanceof Element) || !panel.matches("ANSWER_PANEL")) return;
        // The page's own scroll, heard a frame later, when the answer may have grown under it:
        // not the user's going back up to read.
        if (panel.scrollTop === panel.fo1Placed) return;
        const atEnd = panel.scrollHeight - panel.scrollTop - panel.clientHeight < 8;
        window.fo1ReadingAt = atEnd ? null : panel.scrollTop;
    }, true);
    const ends = (selector, at) => {
        const panel = document.querySelector(selector);
        if (!panel) return;
        panel.scrollTop = at(panel);
        panel.fo1Placed = panel.scrollTop;
    };
    // Watched as the page changes, not a frame after Gradio's change events: a redraw landing
    // after that frame would show the first lines. Scrolled in the next frame, after the
    // frame's scroll events: a scroll back up just made is heard first.
    new MutationObserver((changes) => {
        const within = (block) => changes.some(({target}) =>
            (target instanceof Element ? target : target.parentElement)?.closest(block));
        const [answer, history] = [within("#fo1-answer"), within("#fo1-history")];
        requestAnimationFrame(() => {
            if (answer) ends("ANSWER_PANEL", (panel) => window.fo1ReadingAt ?? panel.scrollHeight);
            if (history) ends("HISTORY_PANEL", (panel) => panel.scrollHeight);
        });
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}""".replace("ANSWER_PANEL", ANSWER_PANEL).replace("HISTORY_PANEL", HISTORY_PANEL)
"""Installed once in the page. Each update redraws the answer and the conversation's history at
their first lines: the answer is kept at its end as it streams, unless the user scrolled back up
to read (then it stays where they read, however it grows, and follows its end again once they
scroll down to it; each Run forgets it, `ASK`); the history is kept at its latest turns."""

WITH_SELECTION = """(prompt, index, selection) => {
    const box = document.querySelector("#fo1-free textarea");
    if (!box) return [prompt, index, null];
    const points = (end) => Array.from(box.value.slice(0, end)).length;
    return [prompt, index, [points(box.selectionStart), points(box.selectionEnd)]];
}"""
"""The free prompt's caret or selection, in code points as Python counts them (the textarea counts
UTF-16 units), so a region reference goes where the user was typing (`Handlers.insert_region`)."""

PLACE_CARET = """(selection) => requestAnimationFrame(() => {
    const box = document.querySelector("#fo1-free textarea");
    if (!box || !Array.isArray(selection)) return;
    const at = Array.from(box.value).slice(0, selection[0]).join("").length;
    box.focus();
    box.setSelectionRange(at, at);
})"""
"""Back in the prompt just after the inserted reference, ready to type on."""

ANNOUNCED = """() => {
    document.querySelector("#fo1-box-note")?.setAttribute("role", "status");
    const said = document.createElement("p");
    said.id = "fo1-said";
    said.setAttribute("role", "status");
    document.body.append(said);
    let words = "";
    let told = "";  // the finished answer last read out
    const say = () => {
        // The app's own status only: Gradio's progress and timer in the same block are not news.
        const text = Array.from(document.querySelectorAll("#fo1-status .fo1-status"),
            (part) => part.textContent.trim()).join(" ");
        // A count rising as the answer streams is not news either: said when the words change.
        const heard = text.replace(/\\d[\\d.,]*/g, "#");
        if (heard === words) return;
        words = heard;
        // A finished answer's words follow its status, once, the first of them if it is long:
        // the answer itself, streamed token by token, is not read out as it grows.
        const answered = document.querySelector("#fo1-status .ANSWERED");
        const answer = answered
            ? document.querySelector("ANSWER_PANEL")?.textContent.trim() ?? "" : "";
        const news = answer !== told ? answer : "";
        told = answer;
        const read = news.length > 400 ? `${news.slice(0, 400)}…` : news;
        said.textContent = read ? `${text} Answer: ${read}` : text;
    };
    const status = document.querySelector("#fo1-status");
    if (status) {
        new MutationObserver(say).observe(
            status, {subtree: true, childList: true, characterData: true});
    }
    const name = () => {
        for (const image of document.querySelectorAll("#fo1-result img")) {
            image.alt = "The image with the answer's boxes drawn on it";
        }
        for (const canvas of document.querySelectorAll("#fo1-editor canvas")) {
            canvas.setAttribute("role", "img");
            canvas.setAttribute("aria-label", "The image and its boxes: the box tool (C) draws, " +
                "the hand tool (D) moves; Boxes as numbers types them");
        }
        for (const row of document.querySelectorAll("#fo1-downloads tr")) {
            const file = row.querySelector("td.filename");
            const link = row.querySelector("a");
            const text = file?.getAttribute("aria-label") || file?.textContent.trim();
            if (link && text) link.setAttribute("aria-label", `Download ${text}`);
        }
        // Gradio names the picker's "select all" box by its tooltip alone.
        document.querySelector("#fo1-regions .select-all-checkbox")
            ?.setAttribute("aria-label", "Pick every region (or none)");
        // Gradio's Download is a named button in an unnamed link: one control, one tab stop.
        for (const link of document.querySelectorAll(
            "#fo1-editor a:has(> button), #fo1-result a:has(> button)")) {
            link.tabIndex = -1;
        }
    };
    for (const id of ["#fo1-editor", "#fo1-result", "#fo1-downloads", "#fo1-question"]) {
        const part = document.querySelector(id);
        if (part) new MutationObserver(name).observe(part, {subtree: true, childList: true});
    }
    name();  // what is there before the first change
}""".replace("ANSWERED", ANSWERED).replace("ANSWER_PANEL", ANSWER_PANEL)
"""Installed once in the page: for screen readers, the box count is read out as it changes
(`role=status` is a polite live region), and the status through an unseen copy of its words
(`#fo1-said`) that changes when they do: the status itself changed at each token of a streaming
answer and each tick of Gradio's timer in it, and was hidden until its first words, which
screen readers then do not read; a finished answer's words are read after its status. The
result image and the editor's canvas have a text, each download link names its file (Gradio
names it by its size), the region picker's "select all" box is named for what it does (Gradio
gives it a tooltip only), and the editor's and the result's Download buttons are a tab stop
each, not two (the button keeps the focus and still downloads)."""

STOP_AVAILABLE = """() => {
    const stop = document.querySelector("#fo1-stop");
    if (!stop) return;
    const page = document.body.classList;
    const mark = () => {
        const idle = !page.contains("fo1-busy") && !page.contains("fo1-run-next");
        stop.setAttribute("aria-disabled", String(idle));
    };
    new MutationObserver(mark).observe(document.body, {attributeFilter: ["class"]});
    mark();
}"""
"""Installed once in the page: Stop is marked unavailable (`aria-disabled`: screen readers say
so, and `app_css` dims it) while there is nothing for it to stop, no answer of the page's on its
way and no question kept for after one (a second Stop forgets that). It still takes the focus
and a click, which then do nothing, as before."""

STATUS_NOTES = """() => {
    const status = document.querySelector("#fo1-status");
    if (!status) return;
    const page = document.body.classList;
    const note = document.createElement("p");
    note.id = "fo1-page-note";
    note.setAttribute("role", "status");
    status.before(note);
    let timer = null;
    let waiting = null;  // what the note says while the question waits, unless stopped
    const show = () => {
        const stopping = page.contains("fo1-stopping");
        const kept = !page.contains("fo1-run-next") ? "" : stopping
            ? "Your next question is asked once this answer has stopped (editing the question, "
                + "or a click here, forgets it)."
            : "Your next question is asked once this answer ends (Stop ends it now; editing the "
                + "question, or a click here, forgets it).";
        const queued = waiting === null ? "" : stopping
            ? "Stopped by you: your question leaves the queue without an answer once the model "
                + "gets to it."
            : waiting;
        const said = [kept, queued].filter(Boolean).join("\\n");
        if (note.textContent !== said) note.textContent = said;
        status.toggleAttribute("data-fo1-waiting", waiting !== null);
    };
    const place = () => {
        // Gradio's own progress there reads "queue: N/M" while the event waits for the model.
        const tracker = status.querySelector("[data-testid=status-tracker]:not(.hide)");
        const queued = tracker?.textContent.match(/queue: (\\d+)\\//);
        if (!queued) {
            clearTimeout(timer);
            timer = null;
            waiting = null;
            show();
            return;
        }
        const before = Number(queued[1]) - 1;
        const next = before ? `${before} more wait before yours` : "yours is next";
        const say = () => {
            waiting = "Waiting for the model: it is busy with a question or proposals asked "
                + `before yours; ${next}.`;
            show();
        };
        if (waiting !== null) say();
        else timer ??= setTimeout(say, 700);
    };
    new MutationObserver(place).observe(status, {
        subtree: true, childList: true, characterData: true, attributeFilter: ["class"]});
    new MutationObserver(show).observe(document.body, {attributeFilter: ["class"]});
}"""
"""Installed once in the page: a note over the status, a polite live region (`role=status`) that
screen readers announce, says
- that a question asked while the page's answer is on its way is kept, and asked once it ends
  (`KEYS_AND_TURNS`; a click on the note forgets it);
- while Run or Propose waits behind what the model is busy with (another page's question or
  proposals), that it does and how many wait before it, in place of the status before and of
  Gradio's place in the queue and time estimate (`app_css`): a visitor saw "queue: 1/1 |
  16.4/10.1s" over an old status, the estimate run past, and no cause named. Every event waits
  in the queue for a moment, even with the model free: only a longer wait is said."""


FILES_DROPPED = """() => {
    const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
    const give = (input, file) => {
        const files = new DataTransfer();
        files.items.add(file);
        input.files = files.files;
        input.dispatchEvent(new Event("change", {bubbles: true}));
    };
    const boxesInput = () => document.querySelector("#fo1-boxes-as-numbers input[type=file]");
    const loadBoxes = (file, frames = 60) => {
        // Its upload button is in the page only while "Boxes as numbers" is open.
        if (!boxesInput()) {
            if (frames === 60) document.querySelector("#fo1-boxes-as-numbers > button")?.click();
            return frames && requestAnimationFrame(() => loadBoxes(file, frames - 1));
        }
        give(boxesInput(), file);
    };
    // A file may be dropped anywhere: else the browser opens it in the page's place.
    addEventListener("dragover", (event) => {
        if (carriesFiles(event)) event.preventDefault();
    });
    addEventListener("drop", (event) => {
        const [file] = event.dataTransfer?.files ?? [];
        if (!file || !TYPES.some((type) => file.name.toLowerCase().endsWith(type))) return;
        event.preventDefault();
        event.stopPropagation();  // the editor would take it for an image
        loadBoxes(file);
    }, true);
    addEventListener("drop", (event) => {
        if (!carriesFiles(event) || event.defaultPrevented) return;
        event.preventDefault();
        const [file] = event.dataTransfer.files;
        const editor = document.querySelector("#fo1-editor input[type=file]");
        if (file && editor) give(editor, file);
    });
}""".replace("TYPES", json.dumps(BOXES_FILE_TYPES))
"""Installed once in the page: a file dropped anywhere on it is taken in, not opened by the browser
in the page's place (the image, boxes and answer lost with it). A boxes file (`BOXES_FILE_TYPES`)
is loaded as by "Load a boxes file", whose accordion it opens to show the numbers read: the
editor took one dropped on it for an image, which the server refused. Any other file dropped
outside the editor goes to it, as if dropped there (an image is shown; anything else is refused
with the editor's message)."""
