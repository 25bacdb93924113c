"""The connect wizard's page base and its first step for each side: how to connect the account.

With a distribution profile the step is one "Sign in to <Provider>" button (the real account is the
default) and "Try with sample data" (the built-in sandbox). "Use your own app…", "Use an access token…",
the sign-in port and a test server sit under Advanced. Each field has its help right under it, and a
problem is written under the field it is about.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from app.ui.wizard_kit import FieldProblems, label
from app.wizard.connect_flow import DEFAULT_PORT, SIDE_LABEL, setup_for

if TYPE_CHECKING:
    from app.ui.connect_wizard import ConnectWizard

PAGE_IDS = {"client": 0, "sides": 1, "crm.account": 2, "crm.signin": 3, "crm.tenant": 4,
            "accounting.account": 5, "accounting.signin": 6, "accounting.tenant": 7, "finish": 8}
STEP_OF = {v: k for k, v in PAGE_IDS.items()}



def select(combo: QComboBox, value: str) -> None:
    i = combo.findData(value)
    if i >= 0:
        combo.setCurrentIndex(i)


class FlowPage(QWizardPage):
    """A page bound to one step of the flow."""

    step_id = ""

    def __init__(self, wizard: ConnectWizard, step_id: str) -> None:
        super().__init__()
        self.w = wizard
        self.step_id = step_id
        step = wizard.cf.flow.step(step_id)
        self.setTitle(step.title)
        if step.subtitle:
            self.setSubTitle(step.subtitle)
        self.errors = label(name="ErrorText")
        self.errors.hide()
        self._field_problems: FieldProblems | None = None

    @property
    def flow(self) -> Any:
        return self.w.cf.flow

    def values(self) -> dict[str, Any]:
        return {}

    def fields(self) -> dict[str, QWidget]:
        """The widget of each value the flow may find wrong, to mark it and say why right under it."""
        return {}

    def show_problems(self, problems: dict[str, str]) -> None:
        if self._field_problems is None:
            self._field_problems = FieldProblems(self, self.fields())
        rest = self._field_problems.show(problems)  # next to their fields; the rest at the bottom
        self.errors.setText("\n".join(rest.values()))
        self.errors.setVisible(bool(rest))

    def validatePage(self) -> bool:
        problems = self.flow.submit(self.values(), self.step_id)
        self.show_problems(problems)
        return not problems

    def nextId(self) -> int:
        data = {**self.flow.data, **self.preview_values()}
        nxt = self.flow.step(self.step_id).next(data)
        return PAGE_IDS[nxt] if nxt else -1

    def preview_values(self) -> dict[str, Any]:
        """Values that decide the next page before they are accepted (the sides to connect)."""
        return {}


def _help(text: str = "") -> QLabel:
    out = label(text, "Help")
    out.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return out


class _Scroll(QScrollArea):
    """A scroll area whose page is as tall as its wrapped help needs at the width it is given (a plain
    resizable scroll area squeezes word-wrapped labels into each other)."""

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fit()

    def fit(self) -> None:
        body = self.widget()
        layout = body.layout() if body is not None else None
        if body is None or layout is None:
            return
        width = self.viewport().width()
        layout.activate()
        height = layout.heightForWidth(width) if layout.hasHeightForWidth() else layout.sizeHint().height()
        body.setMinimumHeight(max(height, layout.minimumSize().height()))


class AccountPage(FlowPage):
    """How this side connects: the profile's app, sample data, the client's own app or an access token."""

    def __init__(self, wizard: ConnectWizard, side: str) -> None:
        super().__init__(wizard, f"{side}.account")
        self.side = side
        self.provider = ""
        self.advanced_allowed = True
        self.sign_in = QPushButton()
        self.sign_in.setObjectName("PrimaryButton")
        self.sign_in.setMinimumSize(320, 44)
        self.sample = False  # "Try with sample data" was clicked (or a reconnect of a sandbox)
        self.sign_in.clicked.connect(lambda: self._go("profile"))
        self.sign_in_note = _help()
        self.no_profile = _help()
        self.sandbox = QPushButton("Try with sample data")
        self.sandbox.clicked.connect(lambda: self._go("sandbox"))
        self.sandbox_note = _help("Sample customers, deals and invoices on this computer, for trying Crossledger "
                                  "out. Nothing leaves this computer.")
        self.sandbox_again = label()

        self.advanced = QToolButton()
        self.advanced.setObjectName("Disclosure")
        self.advanced.setText("Advanced")
        self.advanced.setCheckable(True)
        self.advanced.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced.setAutoRaise(True)
        self.advanced.toggled.connect(self._update)
        self.use_profile = QRadioButton()
        self.account = QRadioButton("Use your own app…")
        self.token = QRadioButton("Use an access token…")
        self.modes = QButtonGroup(self)
        for button in (self.use_profile, self.account, self.token):
            self.modes.addButton(button)
            button.toggled.connect(self._update)

        self.client_id = QLineEdit()
        self.client_id_help = _help()
        self.client_secret = QLineEdit()
        self.client_secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_help = _help()
        self.redirect_help = _help()
        self.access_token = QLineEdit()
        self.access_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_help = _help()
        self.environment = QComboBox()
        self.environment_help = _help()
        self.my_domain = QLineEdit()
        self.my_domain.setPlaceholderText("acme.my.salesforce.com")
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("Any free port")
        self.port_help = _help()
        self.server = QLineEdit()
        self.server.setPlaceholderText("Leave empty for the real service")
        self.server_help = _help("For testing: a local imitation of the provider, such as a Crossledger sandbox.")

        self.form = QVBoxLayout()
        self.rows: dict[QWidget, QWidget] = {}  # each field -> its row (a label, the field, its help under it)
        self.row_labels: dict[QWidget, QLabel] = {}
        for text, widget, notes in (("Client &ID:", self.client_id, (self.client_id_help, self.redirect_help)),
                                    ("Client &secret:", self.client_secret, (self.secret_help,)),
                                    ("Access &token:", self.access_token, (self.token_help,)),
                                    ("&Environment:", self.environment, (self.environment_help,)),
                                    ("&My Domain:", self.my_domain, ()),
                                    ("Sign-in &port:", self.port, (self.port_help,)),
                                    ("Test ser&ver:", self.server, (self.server_help,))):
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            caption = QLabel(text)
            caption.setBuddy(widget)
            caption.setFixedWidth(116)
            caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            caption.setContentsMargins(0, 5, 0, 0)
            column = QVBoxLayout()
            column.setSpacing(2)
            column.addWidget(widget)
            for note in notes:
                column.addWidget(note)
            line.addWidget(caption)
            line.addLayout(column, 1)
            self.form.addWidget(row)
            self.rows[widget], self.row_labels[widget] = row, caption
        self.details = QFrame()
        box = QVBoxLayout(self.details)
        box.setContentsMargins(18, 0, 0, 0)
        for button in (self.use_profile, self.account, self.token):
            box.addWidget(button, 0, Qt.AlignmentFlag.AlignLeft)
        box.addLayout(self.form)

        centre = Qt.AlignmentFlag.AlignHCenter
        for note in (self.sign_in_note, self.sandbox_note):
            note.setAlignment(centre)
        self.sandbox.setMinimumWidth(220)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(24, 40, 24, 0)
        layout.addWidget(self.sign_in, 0, centre)
        layout.addWidget(self.sign_in_note)
        layout.addWidget(self.no_profile)
        layout.addSpacing(14)
        layout.addWidget(self.sandbox, 0, centre)
        layout.addWidget(self.sandbox_note)
        layout.addWidget(self.sandbox_again)
        layout.addSpacing(14)
        layout.addWidget(self.advanced, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.details)
        layout.addStretch(1)
        self.body_scroll = scroll = _Scroll()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll, 1)
        outer.addWidget(self.errors)
        self.environment.currentIndexChanged.connect(self._update)
        self.port.valueChanged.connect(self._update_redirect)
        order = (self.sign_in, self.sandbox, self.advanced, self.use_profile, self.account, self.token,
                 self.client_id, self.client_secret, self.access_token, self.environment, self.my_domain, self.port,
                 self.server)
        for a, b in itertools.pairwise(order):
            self.setTabOrder(a, b)

    # -- loading -----------------------------------------------------------------------------------
    def initializePage(self) -> None:
        cf, d = self.w.cf, self.flow.data
        self.provider = d[self.side]
        setup = cf.setup(self.side)
        name = setup.label
        reconnect = cf.mode == "reconnect"
        has_profile = cf.registration(self.side) is not None
        source = cf.source(self.side)
        self.setTitle(f"{'Reconnect' if reconnect else 'Connect'} {name}")
        if reconnect:
            self.setSubTitle(f"The sign-in to {name} for “{d['name']}” is no longer accepted. Sign in again to "
                             "carry on syncing; links, mapping and history are kept.")
        else:
            self.setSubTitle(f"The client's {SIDE_LABEL[self.side]} for “{d.get('name') or 'the new workspace'}”.")
        on_sandbox = reconnect and source == "sandbox"
        self.sign_in.setText(f"Sign in to {name}")
        self.sign_in.setVisible(has_profile and not on_sandbox)
        self.sign_in_note.setText(f"Your browser opens the {name} sign-in page. Sign in there with the client's "
                                  "account and choose Allow; Crossledger never sees the password.")
        self.sign_in_note.setVisible(has_profile and not on_sandbox)
        self.no_profile.setText(cf.profile_problem or (
            f"This copy of Crossledger has no {name} app of its own: connect with your own {name} app "
            "under Advanced, or try Crossledger with sample data first."))
        self.no_profile.setObjectName("ErrorText" if cf.profile_problem else "Help")
        self.no_profile.setVisible(not has_profile and not on_sandbox)
        self.sandbox.setVisible(not reconnect)
        self.sandbox_note.setVisible(not reconnect)
        self.sandbox_again.setText(f"The built-in {name} sandbox, as before: Next signs in to it again.")
        self.sandbox_again.setVisible(on_sandbox)
        self.advanced.setVisible(not on_sandbox)
        self.advanced_allowed = not on_sandbox
        self.use_profile.setText(f"Sign in with Crossledger's {name} app")
        self.use_profile.setVisible(has_profile)
        self.token.setVisible(bool(setup.token_help))
        self.account.setVisible(has_profile or bool(setup.token_help))  # not a choice when it is the only way
        self.sample = on_sandbox
        if source == "sandbox":
            source = "profile" if has_profile else "account"
        {"profile": self.use_profile, "token": self.token}.get(source, self.account).setChecked(True)
        self.advanced.setChecked(source in ("account", "token") and not on_sandbox)

        self.client_id.setText(d.get(f"{self.side}.client_id", ""))
        self.client_secret.clear()
        stored = cf.stored_secret(self.side)
        self.client_secret.setPlaceholderText("Saved in the keyring; leave empty to reuse it" if stored else
                                              ("Required" if setup.needs_secret else "Only if your app has one"))
        self.client_id_help.setText(setup.client_id_help)
        self.secret_help.setText(setup.secret_help)
        self.token_help.setText(setup.token_help)
        self.environment.blockSignals(True)
        self.environment.clear()
        for choice in setup.environments:
            self.environment.addItem(choice.label, choice.value)
        select(self.environment, d.get(f"{self.side}.environment") or setup.default_environment)
        self.environment.blockSignals(False)
        self.row_labels[self.environment].setText(f"&{setup.environment_label or 'Environment'}:")
        self.environment_help.setText(setup.environment_help)
        self.environment.setEnabled(not reconnect)
        self.my_domain.setText(d.get(f"{self.side}.my_domain", ""))
        self.port.setValue(int(d.get(f"{self.side}.port") or DEFAULT_PORT))
        self.server.setText(d.get(f"{self.side}.server", ""))
        self._update()

    def _go(self, mode: str) -> None:
        """The Sign in and Try with sample data buttons: that way, at once."""
        if mode == "profile":
            self.use_profile.setChecked(True)
        self.sample = mode == "sandbox"
        self.wizard().next()
        if self.wizard().currentPage() is self:
            self.sample = False

    def _checked_mode(self) -> str:
        if self.use_profile.isChecked() and self.w.cf.registration(self.side) is not None:
            return "profile"
        return "token" if self.token.isChecked() else "account"

    def _update(self) -> None:
        if not self.provider:
            return
        setup = setup_for(self.provider)
        mode = self._checked_mode()
        own, token = mode == "account", mode == "token"
        self.details.setVisible(self.advanced.isChecked() and self.advanced_allowed)
        self.advanced.setArrowType(Qt.ArrowType.DownArrow if self.advanced.isChecked() else Qt.ArrowType.RightArrow)
        for widget in (self.client_id, self.client_secret, self.port):
            self._row(widget, own)
        self._row(self.access_token, token)
        places = bool(setup.environments) and not token
        self._row(self.environment, places)
        self.environment_help.setVisible(bool(setup.environment_help))
        self._row(self.my_domain, places and self.environment.currentData() == "mydomain")
        self._update_redirect()
        self.body_scroll.fit()
        QTimer.singleShot(0, self.body_scroll.fit)  # again once the rows shown or hidden are laid out

    def _row(self, widget: QWidget, visible: bool) -> None:
        self.rows[widget].setVisible(visible)

    def _update_redirect(self) -> None:
        if self.provider:
            self.redirect_help.setText(setup_for(self.provider, self.port.value() or DEFAULT_PORT).redirect_help)
            self.port_help.setText("The port of the redirect URL registered with your app.")

    # -- handing over --------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        if self.sample:
            return {"source": "sandbox"}
        mode = self._checked_mode()
        where = {"environment": self.environment.currentData() or "", "my_domain": self.my_domain.text(),
                 "server": self.server.text()}
        if mode == "token":
            return {"source": "token", "access_token": self.access_token.text(), "server": self.server.text()}
        if mode == "profile":
            return {"source": "profile", **where}
        return {"source": "account", "client_id": self.client_id.text(), "client_secret": self.client_secret.text(),
                "port": self.port.value(), **where}

    def fields(self) -> dict[str, QWidget]:
        return {"client_id": self.client_id, "client_secret": self.client_secret, "environment": self.environment,
                "my_domain": self.my_domain, "port": self.port, "server": self.server,
                "access_token": self.access_token}

    def validatePage(self) -> bool:
        problems = self.flow.submit(self.values(), self.step_id)
        if set(problems) - {"source"}:
            self.advanced.setChecked(True)  # the fields a problem is about are under Advanced
        self.show_problems(problems)
        if not problems:
            self.client_secret.clear()  # handed to the flow; the keyring gets it at sign-in
        return not problems
