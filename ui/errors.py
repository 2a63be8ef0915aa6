"""Errors a visitor caused, told to them and kept out of the server log."""

from __future__ import annotations

import gradio as gr


def user_error(message: str) -> gr.Error:
    """A `gr.Error` Gradio shows without printing a traceback: a bad upload, box or option is the
    visitor's to fix, and a Space log full of them would hide the server's own failures (those
    are logged where they are caught)."""
    return gr.Error(message, print_exception=False)
