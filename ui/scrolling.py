"""How the page scrolls itself, shared by its scripts (`ui.page_scripts`, `ui.editor`)."""

SCROLLING = '(matchMedia("(prefers-reduced-motion: reduce)").matches ? "instant" : "smooth")'
"""How the page scrolls itself (to the answer, the image, a problem): smoothly, unless the visitor
asked their system for less motion, for whom a glide across the page can bring on nausea; then
at once."""
