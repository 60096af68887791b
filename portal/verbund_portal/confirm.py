"""The confirmation step of a destructive button (cancel a registration, revoke an account, remove a
webhook, …): the button on the list page is a link to a page reached by GET at the action's own address,
which says what will happen and holds the POST button and a way back. The POST acts only with that
page's ``confirmed`` field, so a stray or replayed POST (an old page's button, a crafted form) asks first
instead of acting. Works without script, as every page of the portal."""
from __future__ import annotations

from flask import redirect, render_template, request

from verbund_portal.forms import EmptyForm


def confirmed() -> bool:
    """True for a POST from a confirmation page: the form token valid and its ``confirmed=yes`` field set."""
    return request.method == "POST" and EmptyForm().validate_on_submit() and request.form.get("confirmed") == "yes"


def confirm_page(title: str, lines: list[str], confirm_label: str, back: str, back_label: str):
    """The confirmation page for the current address: ``title`` (the h1, a question), ``lines`` (what
    will happen, one paragraph each), the POST button ``confirm_label`` (to this same address) and the
    link ``back`` named ``back_label``. A POST that was not confirmed is sent to this page by GET (303),
    so a reload of the answer does not post again."""
    if request.method == "POST":
        return redirect(request.path, code=303)
    return render_template("confirm.html", title=title, lines=lines, confirm_label=confirm_label, back=back,
                           back_label=back_label, action=request.path)
