"""The mapping and migration wizards with the keyboard only, and in the dark palette.

Each page is walked with Tab alone (tests/keyboard.py): every enabled control is reached and has a
name a screen reader says, and no read-only table keeps Tab. The wizards' own style sheets follow
the palette: a wizard made in the dark is dark, and one that is open turns dark when the system does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication, QWizard

from app.connectors.tokens import MemoryTokenStore
from app.ui.theme import DARK, LIGHT, apply_theme
from tests.keyboard import walk_problems
from tests.test_migration_wizard import LONG, _next, qapp_themed, sides  # noqa: F401 - fixtures
from tests.test_wizards_ui import _connected, click, store, wait_complete  # noqa: F401 - fixtures


def _walk(qtbot, wizard: QWizard, where: str) -> list[str]:
    wizard.activateWindow()
    qtbot.waitUntil(wizard.isActiveWindow, timeout=60_000)
    start = wizard.button(QWizard.WizardButton.CancelButton)
    if not start.isVisible():
        start = next(wizard.button(b) for b in (QWizard.WizardButton.FinishButton, QWizard.WizardButton.NextButton)
                     if wizard.button(b).isVisible())
    return walk_problems(wizard, start, f"{where}: {wizard.currentPage().title()}")


@pytest.fixture
def light(qapp_themed) -> Iterator[QApplication]:  # noqa: F811 - the fixture imported above
    apply_theme(qapp_themed, dark=False)
    yield qapp_themed
    apply_theme(qapp_themed, dark=False)


def test_the_migration_wizard_is_walked_with_the_keyboard_on_every_page(qtbot, light, sides) -> None:  # noqa: F811
    from app.ui.migration_wizard import MigrationWizard

    sides.add_near_matches()  # so that the page of possible matches is shown too
    wizard = MigrationWizard(sides.store, None, sides.name, connectors=sides.connectors)
    qtbot.addWidget(wizard)
    wizard.resize(1180, 760)
    wizard.show()
    qtbot.waitUntil(lambda: wizard.currentPage().step_id == "plan", timeout=LONG)
    problems, seen = [], []
    while True:
        page = wizard.currentPage()
        seen.append(page.step_id)
        problems += _walk(qtbot, wizard, "migration")
        if page.step_id == "start":
            break
        _next(qtbot, wizard)
    _next(qtbot, wizard, QWizard.WizardButton.CommitButton)
    qtbot.waitUntil(lambda: wizard.currentPage().step_id == "done", timeout=LONG)
    seen.append("done")
    problems += _walk(qtbot, wizard, "migration")
    assert seen == ["plan", "invalid", "review", "start", "done"]
    assert not problems, "\n".join(problems)
    wizard.accept()


def test_the_mapping_wizard_is_walked_with_the_keyboard_on_every_page(qtbot, light, store, home) -> None:  # noqa: F811
    from app.ui.mapping_wizard import MappingWizard

    tokens = MemoryTokenStore()
    _connected(store, tokens, home)
    wizard = MappingWizard(store, tokens, "Mapped Ltd")
    qtbot.addWidget(wizard)
    wizard.resize(1180, 760)
    wizard.show()
    problems, seen = [], []
    for _ in range(4):
        wait_complete(qtbot, wizard)
        seen.append(wizard.currentId())
        problems += _walk(qtbot, wizard, "mapping")
        if wizard.currentPage().isFinalPage() or wizard.nextId() < 0:
            break
        click(qtbot, wizard)
    assert len(seen) == 4
    assert not problems, "\n".join(problems)
    wizard.reject()


def test_the_wizards_follow_the_dark_palette(qtbot, light, sides) -> None:  # noqa: F811
    from app.ui.migration_wizard import MigrationWizard

    made_light = MigrationWizard(sides.store, None, sides.name, connectors=sides.connectors)
    qtbot.addWidget(made_light)
    assert LIGHT["TEXT_MUTED"] in made_light.styleSheet() and LIGHT["SURFACE"] in made_light.styleSheet()
    apply_theme(light, dark=True)  # the system switched to dark while the wizard was open
    sheet = made_light.styleSheet()
    assert DARK["TEXT_MUTED"] in sheet and DARK["SURFACE"] in sheet and LIGHT["SURFACE"] not in sheet
    made_dark = MigrationWizard(sides.store, None, sides.name, connectors=sides.connectors)
    qtbot.addWidget(made_dark)
    assert DARK["ERROR"] in made_dark.styleSheet() and LIGHT["ERROR"] not in made_dark.styleSheet()
    apply_theme(light, dark=False)
    assert LIGHT["SURFACE"] in made_dark.styleSheet()
    made_light.close()
    made_dark.close()
    QApplication.processEvents()
    assert made_light.styleSheet() == made_dark.styleSheet()
