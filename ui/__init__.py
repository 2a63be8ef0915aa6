"""The Gradio app: Blocks layout, handlers and API endpoints over `fo1_core` and `detect_tools`."""

from ui.files import delete_served_files, serve_from_a_folder_of_its_own
from ui.layout import Settings, build_app
from ui.style import app_css, app_head, app_theme

__all__ = [
    "Settings",
    "app_css",
    "app_head",
    "app_theme",
    "build_app",
    "delete_served_files",
    "serve_from_a_folder_of_its_own",
]
