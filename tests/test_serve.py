"""`faceclust serve`: the review pages and their actions through Starlette's test client, on a
catalog of fake faces (one marker colour is one person). Every action is checked through the
library afterwards; the guards (Host, token, CSRF) are checked by requests that must fail."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FAKE_SCAN, draw_photo, run_cli

pytest.importorskip("starlette.testclient", reason="Starlette's test client needs httpx2 (in the test extra)")

FAKE = FAKE_SCAN
HOST = "127.0.0.1"
PORT = 8765


pytestmark = pytest.mark.usefixtures("fake_default_embedder")


run = run_cli


@pytest.fixture
def catalog(tmp_path):
    """Four people (one colour each, two photos each) and colours 1 and 2 together in a photo."""
    root = tmp_path / "photos"
    for colour in range(4):
        for k in range(2):
            draw_photo(root / f"c{colour}_{k}.png", [(colour, 40, 40, 60)])
    draw_photo(root / "together.png", [(1, 20, 40, 60), (2, 200, 40, 60)])
    path = tmp_path / "c.sqlite"
    assert run("scan", root, "--catalog", path, *FAKE, "--quiet").exit_code == 0
    assert run("cluster", "--catalog", path, "--quiet").exit_code == 0
    return path


@pytest.fixture
def served(catalog, tmp_path):
    """(a logged-in test client, the guard, the catalog path)."""
    from starlette.testclient import TestClient

    from faceclust.serve.app import create_app
    from faceclust.serve.security import Guard
    from faceclust.serve.thumbs import Thumbnails

    guard = Guard(HOST, PORT)
    app = create_app(catalog, guard, thumbs=Thumbnails(tmp_path / "thumbs"))
    client = TestClient(app, base_url=f"http://{HOST}:{PORT}", follow_redirects=False)
    login = client.get(f"/?token={guard.token}")
    assert login.status_code == 303 and login.headers["location"] == "/"
    assert "httponly" in login.headers["set-cookie"].lower() and "samesite=strict" in login.headers["set-cookie"].lower()
    return client, guard, catalog


def people_of(catalog):
    return {p["id"]: p for p in json.loads(run("people", "--catalog", catalog, "--json", "--all").output)}


def post(client, guard, action, follow=True, **fields):
    data = {"csrf": guard.csrf, **fields}
    reply = client.post(f"/act/{action}", data=data)
    assert reply.status_code == 303, reply.text
    return client.get(reply.headers["location"]) if follow else reply


def test_no_token_no_page(catalog):
    from starlette.testclient import TestClient

    from faceclust.serve.app import create_app
    from faceclust.serve.security import Guard

    guard = Guard(HOST, PORT)
    client = TestClient(create_app(catalog, guard), base_url=f"http://{HOST}:{PORT}", follow_redirects=False)
    for url in ("/", "/person/1", "/thumb/1.jpg", "/suggestions", "/names?q=a", "/static/app.js"):
        assert client.get(url).status_code == 403, url
    wrong = guard.token[:-1] + ("x" if guard.token[-1] != "x" else "y")  # one character off
    assert client.get("/?token=" + wrong).status_code == 403
    assert client.post("/act/undo", data={"csrf": guard.csrf}).status_code == 403
    # The right token, but asked for under another name (a DNS-rebinding page): refused.
    other = TestClient(create_app(catalog, guard), base_url=f"http://evil.example:{PORT}", follow_redirects=False)
    assert other.get(f"/?token={guard.token}").status_code == 400


def test_pages_render_people_and_faces(served):
    client, _guard, catalog = served
    page = client.get("/")
    assert page.status_code == 200
    people = people_of(catalog)
    assert len(people) == 4
    for pid in people:
        assert f'href="/person/{pid}"' in page.text
    assert "Unknown faces" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    pid, person = max(people.items(), key=lambda kv: kv[1]["faces"])
    detail = client.get(f"/person/{pid}")
    faces = re.findall(r'name="faces" value="(\d+)"', detail.text)
    assert len(faces) == person["faces"]
    thumb = client.get(f"/thumb/{faces[0]}.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    photo = re.search(r'href="/photo/(\d+)"', detail.text).group(1)
    view = client.get(f"/photo/{photo}")
    assert view.status_code == 200 and f'href="/person/{pid}"' in view.text and 'class="box' in view.text
    assert client.get(f"/preview/{photo}.jpg").content[:2] == b"\xff\xd8"
    assert client.get("/person/999999").status_code == 404
    assert client.get("/thumb/999999.jpg").status_code == 404
    assert client.get("/static/../pyproject.toml").status_code == 404


def test_thumbnails_are_cached_by_photo_content(served, tmp_path):
    client, _guard, catalog = served
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        face = cat.faces_page(next(iter(people_of(catalog))), 1)[0][0]["id"]
        source = cat.face_source(face)
    first = client.get(f"/thumb/{face}.jpg").content
    cached = list((tmp_path / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    cached[0].write_bytes(b"\xff\xd8 from the cache")  # the next request is served from the cache
    assert client.get(f"/thumb/{face}.jpg").content == b"\xff\xd8 from the cache"
    from faceclust.serve.thumbs import Thumbnails

    edited = type(source)(**{**source.__dict__, "content_hash": "another"})  # an edited photo: a new key
    assert Thumbnails(tmp_path / "thumbs").face(edited) == first
    assert len(list((tmp_path / "thumbs").rglob("*.jpg"))) == 2


def test_post_needs_the_csrf_value(served):
    client, guard, catalog = served
    pid = next(iter(people_of(catalog)))
    assert client.post("/act/name", data={"person": pid, "name": "Ann"}).status_code == 403
    assert client.post("/act/name", data={"person": pid, "name": "Ann", "csrf": "wrong"}).status_code == 403
    assert people_of(catalog)[pid]["name"] is None
    page = post(client, guard, "name", person=pid, name="Ann")
    assert people_of(catalog)[pid]["name"] == "Ann"
    assert "named" in page.text and "Ann" in page.text
    # The header form of the value works too (the page's scripts could use it).
    reply = client.post("/act/name", data={"person": pid, "name": "Ann B"}, headers={"x-csrf-token": guard.csrf,
                                                                                   "accept": "application/json"})
    assert reply.status_code == 200 and reply.json()["ok"] and people_of(catalog)[pid]["name"] == "Ann B"


def test_hostile_name_renders_as_text(served):
    client, guard, catalog = served
    pid = next(iter(people_of(catalog)))
    from faceclust.text import printable

    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>\u202e\x1b[31m'
    post(client, guard, "name", person=pid, name=hostile)
    assert people_of(catalog)[pid]["name"] == hostile
    for url in ("/", f"/person/{pid}", "/suggestions"):
        text = client.get(url).text
        assert "<script>alert" not in text and "<img src=x" not in text, url
        assert "\u202e" not in text and "\x1b" not in text, url  # layout and terminal controls as escapes
    assert "&lt;script&gt;alert" in client.get("/").text
    names = client.get("/names?q=script").json()
    assert names == [{"id": pid, "name": printable(hostile)}]


def test_reject_move_new_person_and_undo(served):
    client, guard, catalog = served
    from faceclust.catalog import Catalog

    people = people_of(catalog)
    big = max(people, key=lambda p: people[p]["faces"])
    small = min(people, key=lambda p: people[p]["faces"])
    with Catalog(catalog) as cat:
        faces = [f["id"] for f in cat.faces_page(big, 10)[0]]
    post(client, guard, "reject", faces=[faces[0]], person=str(big))
    with Catalog(catalog) as cat:
        assert cat.assignments_of([faces[0]]) == {}
        assert (faces[0], big) in cat.rejections()
    post(client, guard, "undo")
    with Catalog(catalog) as cat:
        assert cat.assignments_of([faces[0]])[faces[0]][0] == big
    # Move one face to another person by name, then make a new person of two faces.
    post(client, guard, "name", person=small, name="Bo")
    page = post(client, guard, "move", faces=[faces[0]], to="Bo")
    assert "moved" in page.text
    with Catalog(catalog) as cat:
        assert cat.assignments_of([faces[0]])[faces[0]] == (small, "user")
    reply = post(client, guard, "new", follow=False, faces=faces[1:], name="Cy")
    assert reply.headers["location"].startswith("/person/")
    new = int(reply.headers["location"].split("/")[2].split("?")[0])
    assert people_of(catalog)[new]["name"] == "Cy" and people_of(catalog)[new]["faces"] == len(faces) - 1
    history = json.loads(run("history", "--catalog", catalog, "--json").output)
    assert history[0]["description"].startswith(f"new person {new}")


def test_a_failed_action_says_why_and_changes_nothing(served):
    client, guard, catalog = served
    before = people_of(catalog)
    page = post(client, guard, "move", faces=["12345"], to="1")
    assert "no face 12345" in page.text and 'class="note error"' in page.text
    page = post(client, guard, "merge", target="nobody-by-this-name", source="1")
    assert 'class="note error"' in page.text
    assert people_of(catalog) == before
    assert client.post("/act/name", data={"csrf": guard.csrf, "person": "1", "name": "X",
                                          "next": "https://evil.example/"}).headers["location"].startswith("/person/")


def test_suggestions_yes_merges_no_is_never_asked_again(served):
    client, guard, catalog = served
    from faceclust.catalog import Catalog
    from faceclust.find.suggest import suggest_merges

    def card():
        page = client.get("/suggestions").text
        found = re.search(r'id="card" data-kind="\w+" data-a="(\d+)" data-b="(\d*)" data-face="(\d*)"', page)
        return None if found is None else tuple(int(v) if v else None for v in found.groups())

    with Catalog(catalog) as cat:
        listed = [(s.a, s.b, s.face) for s in suggest_merges(cat, limit=None)]
    assert listed and card() == listed[0]
    a, b, _ = card()
    post(client, guard, "answer", answer="no", a=a, b=b)
    with Catalog(catalog) as cat:
        assert (min(a, b), max(a, b)) in cat.apart_pairs()
    assert card() != (a, b, None)
    client.app.app.state.review._suggestions = None  # computed again from the catalog: still not asked
    assert card() != (a, b, None)
    seen = [card()]
    post(client, guard, "answer", answer="skip", a=seen[0][0], b=seen[0][1] or "", face=seen[0][2] or "")
    assert card() != seen[0]
    current = card()
    if current is not None and current[1] is not None:
        count = len(people_of(catalog))
        post(client, guard, "answer", answer="yes", a=current[0], b=current[1])
        assert len(people_of(catalog)) == count - 1
    for _ in range(10):  # answer everything: the "no" pair never comes back
        current = card()
        if current is None:
            break
        assert current[:2] != (a, b)
        post(client, guard, "answer", answer="no", a=current[0], b=current[1] or "", face=current[2] or "")
    assert "No suggestions left" in client.get("/suggestions").text or card() is not None


def test_server_listens_on_loopback_only_by_default(catalog):
    import socket

    from faceclust.serve.server import make_server

    server, sock, served = make_server(catalog, port=0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1" and served.loopback
        assert served.url.startswith(f"http://127.0.0.1:{served.port}/?token=")
        # Another address of this machine (if it has one) does not answer.
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            address = None
        finally:
            probe.close()
        if address and not address.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((address, served.port), timeout=2).close()
    finally:
        sock.close()


def test_serve_reports_a_taken_port(catalog):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        result = run("serve", "--catalog", catalog, "--port", holder.getsockname()[1])
        assert result.exit_code != 0 and "cannot listen on 127.0.0.1" in result.output
        assert "Traceback" not in result.output
    finally:
        holder.close()


def test_people_page_counts_and_covers_match_the_catalog(catalog):
    from faceclust.catalog import Catalog
    from faceclust.people import name_person

    name_person(catalog, str(min(people_of(catalog))), "Zed")
    with Catalog(catalog) as cat:
        page, total = cat.people_page(limit=2)
        rest, _ = cat.people_page(limit=10, offset=2)
        everyone = {p["id"]: p for p in cat.people()}
        assert total == len(everyone) == len(page) + len(rest)
        rows = page + rest
        assert rows[0]["name"] == "Zed"  # named people first, then the biggest
        assert [p["faces"] for p in rows[1:]] == sorted((p["faces"] for p in rows[1:]), reverse=True)
        for p in rows:
            assert (p["faces"], p["photos"]) == (everyone[p["id"]]["faces"], everyone[p["id"]]["photos"])
            faces = cat.faces_page(p["id"], 100)[0]
            assert p["cover"] == max(faces, key=lambda f: f["score"])["id"]
        assert [p["id"] for p in cat.people_page("ZE")[0]] == [rows[0]["id"]]
        assert cat.people_page("%")[1] == 0 and cat.people_page("_")[1] == 0  # LIKE wildcards are text


def test_a_group_of_faces_of_nobody_is_one_answer(tmp_path, monkeypatch):
    """New faces of one person, scanned after the clustering, come as one question ("are these
    faces X?"); a yes with one face unticked puts the ticked one in and keeps the other out."""
    from starlette.testclient import TestClient

    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model
    from faceclust.find import calibration as calibration_module
    from faceclust.serve.app import create_app
    from faceclust.serve.security import Guard
    from faceclust.serve.thumbs import Thumbnails

    root = tmp_path / "photos"
    for k in range(3):
        draw_photo(root / f"c0_{k}.png", [(0, 40, 40, 60)])
    draw_photo(root / "c3_0.png", [(3, 40, 40, 60)])
    draw_photo(root / "c3_1.png", [(3, 40, 40, 60)])
    catalog = tmp_path / "c.sqlite"
    assert run("scan", root, "--catalog", catalog, *FAKE, "--quiet").exit_code == 0
    assert run("cluster", "--catalog", catalog, "--quiet").exit_code == 0
    for k in (3, 4):  # later photos of person 0: faces of nobody until the next clustering
        draw_photo(root / f"c0_{k}.png", [(0, 40, 40, 60)])
    assert run("scan", root, "--catalog", catalog, *FAKE, "--quiet").exit_code == 0
    with Catalog(catalog) as cat:
        model_id = catalog_model(cat).model_id
        records = cat.face_records(model_id)
    lone = sorted(int(f) for f, p in zip(records["face_id"], records["person"]) if p < 0)
    zero = {int(p) for f, p, path in zip(records["face_id"], records["person"], records["path"])
            if "c0_0" in path}.pop()
    assert len(lone) == 2
    fitted = calibration_module.Calibration(model_id, "distance", 8.0, (-40.0,))  # P(same) = 1/2 at 0.2
    monkeypatch.setattr(calibration_module, "load_calibration", lambda path, model: fitted)
    from faceclust.find import judge as judge_module

    by_mean = {"centre": [0.0] * 5, "scale": [1.0] * 5, "coef": [-40.0, 0, 0, 0, 0], "intercept": 8.0}
    judge = judge_module.Judge(model_id, {"merge": by_mean, "face": by_mean, "member": by_mean})
    monkeypatch.setattr(judge_module, "load_judge", lambda model: judge if model == model_id else None)

    guard = Guard(HOST, PORT)
    client = TestClient(create_app(catalog, guard, thumbs=Thumbnails(tmp_path / "thumbs")),
                        base_url=f"http://{HOST}:{PORT}", follow_redirects=False)
    client.get(f"/?token={guard.token}")
    page = client.get("/suggestions").text
    assert 'data-kind="faces"' in page and f'data-a="{zero}"' in page
    assert sorted(int(v) for v in re.findall(r'name="group" value="(\d+)"', page)) == lone
    reply = client.post("/act/answer", data={"csrf": guard.csrf, "answer": "yes", "a": str(zero),
                                             "group": [str(f) for f in lone], "faces": [str(lone[0])]})
    assert reply.status_code == 303
    with Catalog(catalog) as cat:
        assert cat.assignments_of(lone) == {lone[0]: (zero, "user")}
        assert (lone[1], zero) in cat.rejections()
    assert 'data-kind="faces"' not in client.get("/suggestions").text
    history = json.loads(run("history", "--catalog", catalog, "--json").output)
    assert history[0]["description"].startswith("sort face")
    assert run("undo", "--catalog", catalog).exit_code == 0  # one answer, one undo
    with Catalog(catalog) as cat:
        assert cat.assignments_of(lone) == {} and (lone[1], zero) not in cat.rejections()


def test_listening_on_every_address_answers_any_host_but_still_wants_the_token(catalog):
    from starlette.testclient import TestClient

    from faceclust.serve.app import create_app
    from faceclust.serve.security import Guard

    guard = Guard("0.0.0.0", PORT)
    client = TestClient(create_app(catalog, guard), base_url=f"http://nas.local:{PORT}", follow_redirects=False)
    assert client.get("/").status_code == 403
    assert client.get(f"/?token={guard.token}").status_code == 303
    assert client.get("/").status_code == 200


def test_refresh_keeps_the_albums_as_they_were_made(catalog, tmp_path):
    from starlette.testclient import TestClient

    from faceclust.catalog import Catalog
    from faceclust.serve.app import create_app
    from faceclust.serve.security import Guard

    out = tmp_path / "albums"
    assert run("albums", out, "--mode", "copy", "--catalog", catalog).exit_code == 0
    guard = Guard(HOST, PORT)
    client = TestClient(create_app(catalog, guard, out=out), base_url=f"http://{HOST}:{PORT}", follow_redirects=False)
    client.get(f"/?token={guard.token}")
    people = people_of(catalog)
    source, target = sorted(people, key=lambda p: people[p]["faces"])[:2]
    with Catalog(catalog) as cat:
        face = cat.faces_page(source, 1)[0][0]["id"]
        photo = cat.face_source(face).path
    post(client, guard, "move", faces=[face], to=str(target))
    page = post(client, guard, "refresh")
    assert "1 added" in page.text
    placed = [p for p in out.rglob("*") if p.is_file() and p.name == photo.rsplit("/", 1)[1]]
    assert placed and all(not p.is_symlink() for p in placed)  # copies, as the album was made


def test_odd_requests_get_a_page_not_a_crash(served):
    client, guard, catalog = served
    for url in ("/?page=100000000000000000000000", "/unknown?page=99999999999999999999999", "/?page=-3",
                "/person/1?page=abc"):
        assert client.get(url).status_code in (200, 404), url  # 404: person 1 may have been merged away
    page = post(client, guard, "answer", answer="skip", a="x")
    assert 'class="note error"' in page.text and "whole numbers" in page.text
    # The token's redirect is always to a path here, never to another site.
    reply = client.get(f"//evil.example/?token={guard.token}")
    assert reply.status_code == 303 and reply.headers["location"].startswith("/") \
        and not reply.headers["location"].startswith("//")
    assert client.get("/", headers={"host": f"LOCALHOST:{PORT}"}).status_code == 200
    # Two servers on two ports do not share a cookie.
    assert f"faceclust_token_{PORT}=" in client.get(f"/?token={guard.token}").headers["set-cookie"]


def test_pages_keep_hidden_people_across_pages_and_move_is_the_default_action(served, monkeypatch):
    client, guard, catalog = served
    from faceclust.serve import app as app_module

    pid = next(iter(people_of(catalog)))
    monkeypatch.setattr(app_module, "PEOPLE_PER_PAGE", 1)
    post(client, guard, "hide", person=pid)
    page = client.get("/?hidden=1").text
    assert "hidden=1&amp;page=1" in page
    person = client.get(f"/person/{pid}").text
    assert person.index('id="move"') < person.index('id="reject"')  # Enter in a field moves, never rejects


def test_yes_to_two_named_people_keeps_the_first_name(served):
    client, guard, catalog = served
    from faceclust.catalog import Catalog
    from faceclust.find.suggest import suggest_merges

    with Catalog(catalog) as cat:
        first = suggest_merges(cat, limit=1)[0]
    post(client, guard, "name", person=first.a, name="Ann")
    post(client, guard, "name", person=first.b, name="Annie")
    page = client.get("/suggestions").text
    assert "Yes, one person named Ann" in page and 'name="force" value="1"' in page
    post(client, guard, "answer", answer="yes", a=first.a, b=first.b, force="1")
    people = people_of(catalog)
    assert first.b not in people and people[first.a]["name"] == "Ann"
    history = json.loads(run("history", "--catalog", catalog, "--json").output)
    assert history[0]["kind"] == "merge" and "Annie" in json.dumps(history[0]["details"])


def test_answers_from_the_page_are_noted_for_the_judge(served, monkeypatch):
    """With a judge for the model, each answered card is noted by kind (a "no" to a merge
    changed nothing, a "yes" did), and skips are not."""
    client, guard, catalog = served
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model
    from faceclust.find import judge as judge_module
    from faceclust.find.answers import answer_counts

    with Catalog(catalog) as cat:
        model_id = catalog_model(cat).model_id
    fit = {"centre": [0.0] * 5, "scale": [1.0] * 5, "coef": [-4.0, 0, 0, 0, 0], "intercept": 2.0}
    judge = judge_module.Judge(model_id, {kind: dict(fit) for kind in judge_module.KINDS})
    monkeypatch.setattr(judge_module, "load_judge", lambda model, path=None: judge if model == model_id else None)
    client.app.app.state.review._suggestions = None

    def card():
        page = client.get("/suggestions").text
        found = re.search(r'id="card" data-kind="(\w+)" data-a="(\d+)" data-b="(\d*)" data-face="(\d*)"', page)
        return None if found is None else (found.group(1), *(int(v) if v else None for v in found.groups()[1:]))

    kind, a, b, face = card()
    post(client, guard, "answer", answer="skip", a=a, b=b or "", face=face or "")
    with Catalog(catalog) as cat:
        assert answer_counts(cat) == {}
    kind, a, b, face = card()
    post(client, guard, "answer", answer="no", a=a, b=b or "", face=face or "")
    with Catalog(catalog) as cat:
        counts = answer_counts(cat)
    changed = 1 if kind == "member" else 0  # "no" to a doubtful face takes it out
    assert counts[kind]["asked"] == 1 and counts[kind]["changed"] == changed and counts[kind]["expected"] > 0
