"""What every wizard of the window shares: "Step 2 of 4: Sign in" in each page's title, the main
action styled as the primary button, problems shown next to the field they are about, and a style
sheet made from the palette in use (light or dark) when the wizard is shown and again whenever the
palette changes, never once at import."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QBoxLayout, QFormLayout, QLabel, QWidget, QWizard, QWizardPage

from app.ui.accessibility import layout_position, name_controls
from app.ui.theme import Palette, theme_news


def label(text: str = "", name: str = "", wrap: bool = True) -> QLabel:
    """A wizard label: word-wrapped unless told not to, with an object name for the style sheet."""
    out = QLabel(text)
    out.setWordWrap(wrap)
    if name:
        out.setObjectName(name)
    return out


STEP_PREFIX = re.compile(r"^Step \d+ of \d+: ")

# The wizard's buttons that move the work forward: styled as the window's primary button.
MAIN_BUTTONS = (QWizard.WizardButton.NextButton, QWizard.WizardButton.CommitButton,
                QWizard.WizardButton.FinishButton)


def plain_title(page: QWizardPage) -> str:
    return STEP_PREFIX.sub("", page.title())


def step_title(n: int, total: int, title: str) -> str:
    return f"Step {n} of {total}: {title}" if total > 1 else title


def add_step_indicator(wizard: QWizard, position: Callable[[int], tuple[int, int] | None]) -> Callable[[], None]:
    """Prefix the current page's title with "Step n of m: " each time a page is shown (after its
    ``initializePage``, which may set the title), and name its controls for a screen reader
    (app.ui.accessibility). ``position(page_id)`` gives (n, m) or None.
    Returns a function that says it again for the current page (when what was learnt on it, such as
    a sign-in opening several organisations, adds a step)."""

    def show(page_id: int) -> None:
        page = wizard.page(page_id)
        if page is None:
            return
        name_controls(page)  # what the page filled in for this visit gets a name a screen reader says
        where = position(page_id)
        if where is not None:
            page.setTitle(step_title(where[0], where[1], plain_title(page)))

    wizard.currentIdChanged.connect(show)
    return lambda: show(wizard.currentId())


def style_main_action(wizard: QWizard, **labels: str) -> None:
    """Next, Commit and Finish as primary buttons (the default one is what Enter presses);
    ``labels`` renames them: ``finish="Apply"``."""
    names = {"next": QWizard.WizardButton.NextButton, "commit": QWizard.WizardButton.CommitButton,
             "finish": QWizard.WizardButton.FinishButton}
    for key, text in labels.items():
        wizard.setButtonText(names[key], text)
    for which in MAIN_BUTTONS:
        button = wizard.button(which)
        button.setObjectName("PrimaryButton")
        button.style().unpolish(button)
        button.style().polish(button)


def wizard_style() -> str:
    """The rules every wizard adds to the application's style sheet, in the colours of the palette in
    use now."""
    p = Palette
    return f"""
QLabel#ErrorText {{ color: {p.ERROR}; }}
QLabel#Help {{ color: {p.TEXT_MUTED}; }}
QFrame#FailureBox {{ background: {p.ERROR_SOFT}; border: 1px solid {p.ERROR}; border-radius: 6px; }}
QFrame#SuccessBox {{ background: {p.SUCCESS_SOFT}; border: 1px solid {p.SUCCESS}; border-radius: 6px; }}
QLabel#BoxTitle {{ font-weight: 600; }}
"""


class _PaletteFollower(QObject):
    """Makes its widget's style sheet again when the widget is shown and when the theme changes (the
    system switched between light and dark: app.ui.theme.apply_theme)."""

    def __init__(self, widget: QWidget, style: Callable[[], str]) -> None:
        super().__init__(widget)
        self.style = style
        widget.installEventFilter(self)
        self.widget = widget
        theme_news().changed.connect(self.theme_changed)  # a slot of this child: gone with the widget
        self.restyle(widget)

    def theme_changed(self) -> None:
        self.restyle(self.widget)

    def restyle(self, widget: QWidget) -> None:
        sheet = self.style()
        if widget.styleSheet() != sheet:  # setting it again would re-polish every child for nothing
            widget.setStyleSheet(sheet)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and isinstance(watched, QWidget):
            self.restyle(watched)
        return False


def follow_palette(widget: QWidget, extra: Callable[[], str] | None = None) -> None:
    """Give ``widget`` (a wizard) the wizards' rules plus ``extra()``'s, in the palette's colours, now
    and again each time it is shown or the palette changes."""
    _PaletteFollower(widget, lambda: wizard_style() + (extra() if extra is not None else ""))


def _restyle(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class FieldProblems:
    """Marks the fields a problem is about and writes its message right under the field.

    ``fields`` maps a problem's key (as the flow names it) to its widget. Problems about no listed
    field are returned, for the page's own message at the bottom.
    """

    def __init__(self, page: QWidget, fields: Mapping[str, QWidget]) -> None:
        self.page = page
        self.fields = dict(fields)
        self.labels: dict[str, QLabel] = {}

    def _label(self, key: str) -> QLabel | None:
        if key in self.labels:
            return self.labels[key]
        widget = self.fields[key]
        holder = widget.parentWidget()  # the page, or a group box on it: its layout holds the field
        root = holder.layout() if holder is not None else None
        found = layout_position(root, widget) if root is not None else None
        if found is None:
            return None
        layout, index = found
        label = QLabel()
        label.setObjectName("FieldError")
        label.setWordWrap(True)
        label.hide()
        if isinstance(layout, QFormLayout):
            position: tuple[int, object] = layout.getWidgetPosition(widget)  # type: ignore[assignment]
            layout.insertRow(position[0] + 1, "", label)
        elif isinstance(layout, QBoxLayout):
            layout.insertWidget(index + 1, label)
        else:
            return None
        self.labels[key] = label
        return label

    def show(self, problems: Mapping[str, str]) -> dict[str, str]:
        rest = {}
        for key, widget in self.fields.items():
            message = problems.get(key)
            widget.setProperty("invalid", bool(message))
            _restyle(widget)
            label = self._label(key) if message or key in self.labels else None
            if label is not None:
                label.setText(message or "")
                label.setVisible(bool(message))
                widget.setAccessibleDescription(message or "")
            if message and label is None:
                rest[key] = message
        first = next((self.fields[k] for k in self.fields if problems.get(k)), None)
        if first is not None:
            first.setFocus()
        rest.update({k: v for k, v in problems.items() if k not in self.fields})
        return rest
