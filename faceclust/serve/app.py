"""The review web app: pages of people, a person, suggestions, unknown faces and a photo, and
the actions on them. Every action calls the same library function as the command line
(:mod:`faceclust.people`), so it is one history entry, undoable from the page or with
``faceclust undo``. Faces and photos are addressed by catalog id only; no path is ever taken
from a request.

Handlers are thin: read the request, call the library, render or redirect. Typed errors
(:class:`~faceclust.errors.FaceclustError`) become a message on the page; anything else is a
500 with one line on the server's stderr.
"""

from __future__ import annotations

import secrets
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from faceclust.errors import FaceclustError, NotFound, UsageProblem
from faceclust.serve.security import Guard, GuardMiddleware
from faceclust.text import printable

PEOPLE_PER_PAGE = 240
FACES_PER_PAGE = 600
SUGGESTION_FACES = 6
SUGGESTIONS_KEPT = 200  # computed at once; the queue is computed again when fewer are left
REFILL_BELOW = 20
MAX_PAGE = 10**6


@dataclass
class Note:
    kind: str  # "done" or "error"
    text: str
    undoable: bool = False


class Review:
    """The state of one server run: the catalog, its secrets, messages waiting to be shown,
    skipped suggestions and the suggestion list of the catalog's current state."""

    def __init__(self, catalog_path: Path, guard: Guard, out: Path | None = None, thumbs=None) -> None:
        from faceclust.serve.thumbs import Thumbnails

        self.catalog_path = Path(catalog_path)
        self.guard = guard
        self.out = Path(out) if out is not None else None
        self.thumbs = thumbs or Thumbnails()
        self.notes: dict[str, Note] = {}
        self.skipped: set[tuple] = set()
        self.answered = 0
        self._suggestions: tuple | None = None
        self._lock = threading.Lock()

    def catalog(self):
        from faceclust.catalog import Catalog

        return Catalog(self.catalog_path, create=False)

    def note(self, kind: str, text: str, undoable: bool = False) -> str:
        key = secrets.token_urlsafe(8)
        self.notes[key] = Note(kind, text, undoable)
        while len(self.notes) > 100:
            self.notes.pop(next(iter(self.notes)))
        return key

    def suggestions(self) -> list:
        """Merge suggestions for the catalog as it is now (computed once per state)."""
        from faceclust.find.suggest import suggest_merges

        with self._lock, self.catalog() as catalog:
            key = catalog.state_key()
            if self._suggestions is None or self._suggestions[0] != key:
                self._suggestions = (key, suggest_merges(catalog, limit=SUGGESTIONS_KEPT))
            return self._suggestions[1]

    def shown(self, key: tuple):
        """The suggestion of the kept queue with this key (None when the queue was dropped
        since: nothing is computed for it)."""
        with self._lock:
            kept = self._suggestions[1] if self._suggestions is not None else []
        return next((s for s in kept if suggestion_key(s) == key), None)

    def note_answer(self, suggestion, changed: bool) -> None:
        from faceclust.find.answers import note_answer

        with self._lock, self.catalog() as catalog:
            note_answer(catalog, suggestion, changed)

    def forget_answered(self, a: int, b: int | None, face: int | None, merged: bool, group=()) -> None:
        """After an answer from the queue: drop that suggestion (and, after a merge, every one
        about the person merged away; after a face was placed, every one about that face)
        instead of computing all of them again, which takes seconds in a big library, and put
        the rest in the order the judge gives them after this answer. Any other change to the
        catalog recomputes them."""
        from faceclust.find.answers import rerank

        with self._lock, self.catalog() as catalog:
            if self._suggestions is None:
                return
            group = set(group)
            kept = [s for s in self._suggestions[1]
                    if suggestion_key(s) != (a, b, face)
                    and not (merged and b is not None and b in (s.a, s.b))
                    and not (merged and face is not None and s.face == face)
                    and not (group and (s.face in group or (s.kind == "faces" and group & set(s.faces_b))))]
            # Few left: compute them all again on the next visit (merges make new neighbours,
            # and only the first 200 were kept).
            self._suggestions = (catalog.state_key(), rerank(catalog, kept)) if len(kept) >= REFILL_BELOW else None


def suggestion_key(s) -> tuple:
    return (s.a, s.b, s.face)


def create_app(catalog_path: Path, guard: Guard, out: Path | None = None, thumbs=None,
               faces_per_page: int = FACES_PER_PAGE):
    """The Starlette app for ``catalog_path``, behind :class:`GuardMiddleware`."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    from faceclust import people as lib

    review = Review(catalog_path, guard, out, thumbs)
    env = Environment(loader=PackageLoader("faceclust.serve", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["label"] = lambda p: printable(p["name"]) if p.get("name") else f"person {p['id']}"
    env.filters["shown"] = lambda text: printable(text) if text else text  # no layout or terminal controls
    static = Path(__file__).parent / "static"

    def page(request, template: str, status: int = 200, **values):
        note = review.notes.pop(request.query_params.get("note", ""), None)
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "note"])
        here = request.url.path + (f"?{rest}" if rest else "")
        html = env.get_template(template).render(csrf=guard.csrf, note=note, path=request.url.path, here=here,
                                                 can_refresh=review.out is not None, **values)
        return HTMLResponse(html, status_code=status)

    def int_param(request, name: str, default: int = 0) -> int:
        try:
            return min(MAX_PAGE, max(0, int(request.query_params.get(name, default))))
        except ValueError:
            return default

    # -- pages --------------------------------------------------------------------------

    def people_page(request):
        query = request.query_params.get("q", "").strip()
        number = int_param(request, "page")
        hidden = request.query_params.get("hidden") == "1"
        with review.catalog() as catalog:
            rows, total = catalog.people_page(query or None, hidden, PEOPLE_PER_PAGE, number * PEOPLE_PER_PAGE)
            _faces, unknown = catalog.faces_page(None, limit=1)
        return page(request, "people.html", people=rows, total=total, query=query, page=number,
                    pages=max(1, -(-total // PEOPLE_PER_PAGE)), unknown=unknown, hidden=hidden)

    def person_page(request):
        number = int_param(request, "page")
        with review.catalog() as catalog:
            pid = catalog.resolve_person(request.path_params["person"])
            if pid != request.path_params["person"]:
                return RedirectResponse(f"/person/{pid}", 303)
            person = catalog.person(pid)
            faces, total = catalog.faces_page(pid, faces_per_page, number * faces_per_page)
        return page(request, "person.html", person=person, faces=faces, total=total, page=number,
                    pages=max(1, -(-total // faces_per_page)))

    def unknown_page(request):
        number = int_param(request, "page")
        with review.catalog() as catalog:
            faces, total = catalog.faces_page(None, faces_per_page, number * faces_per_page)
        return page(request, "unknown.html", faces=faces, total=total, page=number,
                    pages=max(1, -(-total // faces_per_page)))

    def photo_page(request):
        with review.catalog() as catalog:
            photo = catalog.photo_view(request.path_params["photo"])
        if photo is None:
            raise NotFound(f"no photo {request.path_params['photo']} in the catalog")
        w, h = max(photo["width"] or 1, 1), max(photo["height"] or 1, 1)
        for face in photo["faces"]:
            left, top, right, bottom = face["box"]
            face["style"] = (f"left:{100 * left / w:.3f}%;top:{100 * top / h:.3f}%;"
                             f"width:{100 * (right - left) / w:.3f}%;height:{100 * (bottom - top) / h:.3f}%")
        return page(request, "photo.html", photo=photo, name=printable(Path(photo["path"]).name))

    def suggestions_page(request):
        waiting = [s for s in review.suggestions() if suggestion_key(s) not in review.skipped]
        card = waiting[0] if waiting else None
        face_photo = None
        if card is not None and card.face is not None:
            with review.catalog() as catalog:
                face_photo = catalog.photos_of_faces([card.face]).get(card.face)
        return page(request, "suggestions.html", card=card, waiting=len(waiting), answered=review.answered,
                    faces=SUGGESTION_FACES, face_photo=face_photo)

    def names(request):
        with review.catalog() as catalog:
            found = catalog.person_names(request.query_params.get("q", ""))
        return JSONResponse([{"id": pid, "name": printable(name)} for pid, name in found])

    def thumb(request):
        with review.catalog() as catalog:
            source = catalog.face_source(request.path_params["face"])
        return _image(source, review.thumbs.face)

    def preview(request):
        with review.catalog() as catalog:
            source = catalog.photo_source(request.path_params["photo"])
        return _image(source, review.thumbs.photo)

    def _image(source, make):
        if source is None:
            return Response("no such face or photo", 404, media_type="text/plain")
        try:
            data = make(source)
        except FaceclustError as exc:
            return Response(f"cannot read the photo: {exc}", 404, media_type="text/plain")
        return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=86400"})

    def static_file(request):
        name = request.path_params["name"]
        if name not in ("app.css", "app.js"):
            return Response("not found", 404, media_type="text/plain")
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return Response((static / name).read_bytes(), media_type=kind, headers={"cache-control": "no-cache"})

    # -- actions --------------------------------------------------------------------------

    def _ids(values) -> list[int]:
        try:
            return [int(v) for v in values]
        except ValueError:
            raise UsageProblem("ids are whole numbers") from None

    def _field(form, name: str) -> str:
        value = (form.get(name) or "").strip()
        if not value:
            raise UsageProblem(f"{name} is missing")
        return value

    def act_name(form):
        d = lib.name_person(review.catalog_path, _field(form, "person"), _field(form, "name"))
        return d, f"named {_field(form, 'name')!r}", f"/person/{d.person}"

    def act_merge(form):
        d = lib.merge_people(review.catalog_path, _field(form, "target"), [_field(form, "source")],
                             force=form.get("force") == "1")
        return d, "merged", f"/person/{d.person}"

    def act_apart(form):
        d = lib.keep_apart(review.catalog_path, _field(form, "a"), _field(form, "b"))
        return d, "kept apart", None

    def act_reject(form):
        faces = _ids(form.getlist("faces"))
        d = lib.reject_faces(review.catalog_path, faces, form.get("person") or None)
        return d, f"{len(faces)} face(s): not this person", None

    def act_move(form):
        faces = _ids(form.getlist("faces"))
        d = lib.move_faces(review.catalog_path, faces, _field(form, "to"))
        return d, f"{len(faces)} face(s) moved", None

    def act_new(form):
        faces = _ids(form.getlist("faces"))
        d = lib.new_person(review.catalog_path, faces, form.get("name") or None)
        return d, f"new person from {len(faces)} face(s)", f"/person/{d.person}"

    def act_hide(form):
        hidden = form.get("show") != "1"
        d = lib.hide_person(review.catalog_path, _field(form, "person"), hidden=hidden)
        return d, "hidden" if hidden else "shown", None

    def act_undo(form):
        result = lib.undo(review.catalog_path)
        text = "; ".join(f"undone: {printable(row['description'])}" for row in result.undone)
        review._suggestions = None
        return None, text or "nothing to undo", None

    def act_answer(form):
        """A suggestion answered: yes merges (or moves the lone face), no keeps them apart
        (or rejects the face from that person), skip leaves it for later."""
        answer = _field(form, "answer")
        a = _field(form, "a")
        b, face = form.get("b") or None, form.get("face") or None
        if answer == "skip":
            review.skipped.add((_ids([a])[0], _ids([b])[0] if b else None, _ids([face])[0] if face else None))
            return None, "skipped", None
        _ids([a, *([b] if b else [])])  # person references are ids here: refuse anything else before acting
        if answer not in ("yes", "no"):
            raise UsageProblem("an answer is yes, no or skip")
        group = _ids(form.getlist("group"))
        if group:  # "are these faces a?": the ticked ones are, the others are not
            ticked = set(_ids(form.getlist("faces"))) if answer == "yes" else set()
            d = lib.sort_faces(review.catalog_path, a, [f for f in group if f in ticked],
                               [f for f in group if f not in ticked])
            review.answered += 1
            review.forget_answered(*_ids([a]), None, None, merged=False, group=group)
            return d, f"{len(ticked)} of {len(group)} faces are this person", None
        key = (_ids([a])[0], _ids([b])[0] if b else None, _ids([face])[0] if face else None)
        asked = review.shown(key)
        if face:
            d = (lib.move_faces(review.catalog_path, _ids([face]), a) if answer == "yes"
                 else lib.reject_faces(review.catalog_path, _ids([face]), a))
        elif b:
            d = (lib.merge_people(review.catalog_path, a, [b], force=form.get("force") == "1") if answer == "yes"
                 else lib.keep_apart(review.catalog_path, a, b))
        else:
            raise UsageProblem("a suggestion is two people or a face and a person")
        if asked is not None:  # what this library's answers do weighs later suggestions
            review.note_answer(asked, changed=(answer == "no") if asked.kind == "member" else (answer == "yes"))
        review.answered += 1
        review.forget_answered(*_ids([a]), *(_ids([b]) if b else [None]), *(_ids([face]) if face else [None]),
                               merged=answer == "yes")
        return d, "merged" if answer == "yes" and b else "moved" if answer == "yes" else "kept apart", None

    def act_refresh(form):
        if review.out is None:
            raise UsageProblem("start 'faceclust serve --out FOLDER' to refresh albums from here")
        from faceclust.output.album_plan import album_mode
        from faceclust.output.albums import write_albums
        from faceclust.output.report import REPORT_NAME, write_report

        # The albums as they were made (links, hard links or copies), unknown faces if they had them.
        summary = write_albums(review.catalog_path, review.out, album_mode(review.out) or "symlink",
                               include_unknown=(review.out / "unknown").is_dir()).as_dict()
        write_report(review.catalog_path, review.out / REPORT_NAME)
        return None, (f"albums in {printable(review.out)}: {summary['added']} added, {summary['removed']} removed; "
                      "report written"), None

    actions = {"name": act_name, "merge": act_merge, "apart": act_apart, "reject": act_reject, "move": act_move,
               "new": act_new, "hide": act_hide, "undo": act_undo, "answer": act_answer, "refresh": act_refresh}

    async def act(request):
        form = await request.form()
        if not guard.check_csrf(form.get("csrf") or request.headers.get("x-csrf-token")):
            return Response("forbidden: the form is stale or came from another site; reload the page", 403,
                            media_type="text/plain")
        handler = actions.get(request.path_params["action"])
        if handler is None:
            return Response("no such action", 404, media_type="text/plain")
        back = _local(form.get("next")) or "/"
        from starlette.concurrency import run_in_threadpool

        try:
            decision, text, go = await run_in_threadpool(handler, form)
        except FaceclustError as exc:
            key = review.note("error", printable(str(exc)))
            return _after(request, back, key, {"ok": False, "error": str(exc)}, 400)
        notes = list(decision.notes) if decision else []
        key = review.note("done", "; ".join([text, *notes]), undoable=decision is not None)
        target = back if go is None or form.get("stay") == "1" else go
        return _after(request, target, key, {"ok": True, "message": text, "notes": notes,
                                             "person": decision.person if decision else None}, 200)

    def _after(request, target: str, key: str, payload: dict, status: int):
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(payload, status)
        joiner = "&" if "?" in target else "?"
        return RedirectResponse(target + joiner + urlencode({"note": key}), 303)

    async def problem(request, exc):
        if isinstance(exc, NotFound):
            return page(request, "problem.html", 404, message=printable(str(exc)))
        if isinstance(exc, FaceclustError):
            return page(request, "problem.html", 400, message=printable(str(exc)))
        print(f"faceclust serve: {type(exc).__name__}: {exc}", file=sys.stderr)
        return page(request, "problem.html", 500, message="something went wrong; the server log has one line")

    routes = [
        Route("/", people_page),
        Route("/person/{person:int}", person_page),
        Route("/unknown", unknown_page),
        Route("/suggestions", suggestions_page),
        Route("/photo/{photo:int}", photo_page),
        Route("/names", names),
        Route("/thumb/{face:int}.jpg", thumb),
        Route("/preview/{photo:int}.jpg", preview),
        Route("/static/{name}", static_file),
        Route("/act/{action}", act, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={FaceclustError: problem, Exception: problem})
    app.state.review = review
    return GuardMiddleware(app, guard)


def _local(target) -> str | None:
    """``target`` when it is a path on this server (never another site)."""
    if not target or not isinstance(target, str):
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target
