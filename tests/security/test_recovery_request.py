"""Attack: a recovery request from someone who holds nothing (issue 12, point 4).

The stranger can read the storage (so can run `coffer recovery request`) but holds no passphrase, recovery key,
key file or contact key. They send their request to the owner's recovery contacts, posing as the owner. A
contact who answers it without checking the verification code with the owner would hand the stranger a share;
with the threshold defaulting to 1, one such answer used to be enough for `recover` to make the stranger a new
passphrase slot. Fixed: `assist` refuses (exit 3, no response file) unless the contact types back the code that
the owner's own `request` showed them out-of-band; the default threshold is 2 when there are 2 or more contacts;
`recover` tries every combination of the shares it is given and names the contact whose share is bad.

These tests fail on the code of commit da2648b (checked: there `assist` answered any request without a code,
`--code` did not exist, the default threshold was 1 and `recover` failed on the first bad share).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from conftest import CofferCli
from ios_helpers import build_backup

from agent.keys import primitives

NEW_PASSPHRASE = "the stranger's passphrase"


def _contact_env(name: str) -> dict[str, str | None]:
    """A contact on their own machine: their passphrase, no repository secret."""
    return {"COFFER_CONTACT_PASSWORD": f"{name}'s own passphrase", "COFFER_PASSWORD": None}


def _owner_with_contacts(coffer: CofferCli, tmp_path: Path, names: tuple[str, ...]) -> tuple[dict[str, Path], dict[str, str], str]:
    """A repository with one backup and a contact slot for `names` at the default threshold."""
    coffer.init()
    keys, publics = {}, {}
    for name in names:
        (tmp_path / name).mkdir()
        keys[name] = tmp_path / name / "contact.key"
        env = {**_contact_env(name), "COFFER_REPOSITORY": None}
        publics[name] = coffer("--json", "recovery", "contact-keygen", "--output", keys[name], env=env).json()["public_key"]
    added = coffer("--json", "recovery", "add-contact", *publics.values()).json()
    assert added["threshold"] == 2, added
    build_backup(tmp_path / "backup")
    snapshot = coffer("--json", "import", tmp_path / "backup").json()["id"]
    return keys, publics, snapshot


def _request(coffer: CofferCli, path: Path) -> str:
    """`recovery request` by someone without any repository secret; returns the code it shows."""
    path.parent.mkdir(exist_ok=True)
    return coffer("--json", "recovery", "request", "--output", path, env={"COFFER_PASSWORD": None}).json()["code"]


def _forged_response(request: Path, index: int, output: Path, slot: str | None = None) -> None:
    """What anyone can make for a request they hold: a made-up share (index, threshold 2) sealed to its
    ephemeral key, claiming one of the request's slots."""
    document = json.loads(request.read_text())
    ephemeral = base64.b64decode(document["ephemeral_public"])
    plain = bytes((index, 2)) + primitives.random_key()[:16]
    share = primitives.seal_to(ephemeral, plain, purpose=b"contact response v2")
    output.write_text(json.dumps({"coffer_recovery_response": 2, "slot": slot or sorted(document["slots"])[0],
                                  "share": base64.b64encode(share).decode()}))


def _answer_index(response: Path, request_secret: Path) -> tuple[int, str]:
    """The share index and slot of a genuine answer (what the contact who made it knows)."""
    private = base64.b64decode(json.loads(request_secret.read_text())["ephemeral_private"])
    document = json.loads(response.read_text())
    plain = primitives.open_sealed(private, base64.b64decode(document["share"]), purpose=b"contact response v2")
    return plain[0], document["slot"]


def _opens(coffer: CofferCli, passphrase: str) -> bool:
    return coffer("snapshots", env={"COFFER_PASSWORD": passphrase}, expect=None).returncode == 0


def test_a_stranger_holding_nothing_gets_nothing(coffer: CofferCli, tmp_path: Path) -> None:
    keys, _, _ = _owner_with_contacts(coffer, tmp_path, ("alice", "bob", "carol"))
    request = tmp_path / "stranger" / "request.json"
    _request(coffer, request)
    stranger_secret = f"{request}.secret"

    # A contact who answers without a code (nothing typed at the prompt) produces nothing.
    lazy = tmp_path / "alice" / "response.json"
    run = coffer("recovery", "assist", request, "--contact-key", keys["alice"], "--output", lazy,
                 env=_contact_env("alice"), expect=None)
    assert run.returncode != 0 and not lazy.exists(), run.describe()

    # The owner, called by the contacts, has no request open: the code the contacts were given does not match.
    responses = []
    for name in ("alice", "bob"):
        response = tmp_path / name / "response.json"
        run = coffer("recovery", "assist", request, "--contact-key", keys[name], "--output", response,
                     "--code", "0000-0000-0000", env=_contact_env(name), expect=3)
        assert not response.exists()
        assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith("coffer: "), run.describe()
        assert "verification code" in run.stderr
        responses.append(response)

    # With nothing from the contacts, the stranger forges answers to their own request: `recover` refuses.
    for index, response in enumerate(responses, start=1):
        _forged_response(request, index, response)
    run = coffer("recovery", "recover", *responses, "--request-secret", stranger_secret,
                 env={"COFFER_PASSWORD": None, "COFFER_NEW_PASSWORD": NEW_PASSPHRASE}, expect=3)
    assert run.stderr.startswith("coffer: ") and "Traceback" not in run.stderr
    assert not _opens(coffer, NEW_PASSPHRASE)


def test_with_the_code_read_out_of_band_the_owner_gets_back_in(coffer: CofferCli, tmp_path: Path) -> None:
    keys, _, snapshot = _owner_with_contacts(coffer, tmp_path, ("alice", "bob", "carol"))
    request = tmp_path / "owner" / "request.json"
    code = _request(coffer, request)
    responses = []
    for name in ("alice", "carol"):
        response = tmp_path / name / "response.json"
        shown = coffer("--json", "recovery", "assist", request, "--contact-key", keys[name], "--output", response,
                       "--code", code.replace("-", " ").lower(), env=_contact_env(name)).json()
        assert shown["code"] == code  # the contact's screen shows the same code as the owner's
        responses.append(response)
    coffer("recovery", "recover", *responses, "--request-secret", f"{request}.secret",
           env={"COFFER_PASSWORD": None, "COFFER_NEW_PASSWORD": NEW_PASSPHRASE})
    out = tmp_path / "export"
    coffer("export", snapshot, out, env={"COFFER_PASSWORD": NEW_PASSPHRASE})
    assert (out / "Manifest.db").read_bytes() == (tmp_path / "backup" / "Manifest.db").read_bytes()


def test_typing_the_code_at_the_prompt_works(coffer: CofferCli, tmp_path: Path) -> None:
    import subprocess
    import sys

    keys, _, _ = _owner_with_contacts(coffer, tmp_path, ("alice", "bob"))
    request = tmp_path / "owner" / "request.json"
    code = _request(coffer, request)
    response = tmp_path / "alice" / "response.json"
    argv = ["recovery", "assist", str(request), "--contact-key", str(keys["alice"]), "--output", str(response)]
    for typed, expected in (("1111-2222-3333\n", 3), (code + "\n", 0)):
        done = subprocess.run([sys.executable, "-m", "agent", *argv], input=typed, capture_output=True, text=True,
                              env=coffer.environment(_contact_env("alice")), check=False, timeout=120)
        assert done.returncode == expected, done.stderr
        assert response.exists() == (expected == 0) and "Traceback" not in done.stderr


def test_one_bad_share_among_three_is_named(coffer: CofferCli, tmp_path: Path) -> None:
    keys, publics, _ = _owner_with_contacts(coffer, tmp_path, ("alice", "bob", "carol"))
    request = tmp_path / "owner" / "request.json"
    code = _request(coffer, request)
    responses = {}
    for name in ("alice", "bob", "carol"):
        responses[name] = tmp_path / name / "response.json"
        coffer("recovery", "assist", request, "--contact-key", keys[name], "--output", responses[name],
               "--code", code, env=_contact_env(name))
    # Carol (or whoever handled her answer) sends back a wrong share, re-sealed with her index.
    carol_index, slot = _answer_index(responses["carol"], Path(f"{request}.secret"))
    responses["carol"].unlink()
    _forged_response(request, carol_index, responses["carol"], slot)
    ordered = [responses["carol"], responses["alice"], responses["bob"]]  # the bad one among the first two
    run = coffer("recovery", "recover", *ordered, "--request-secret", f"{request}.secret",
                 env={"COFFER_PASSWORD": None, "COFFER_NEW_PASSWORD": NEW_PASSPHRASE})
    assert str(responses["carol"]) in run.stderr and publics["carol"][:30] in run.stderr, run.describe()
    assert str(responses["alice"]) not in run.stderr and str(responses["bob"]) not in run.stderr
    assert _opens(coffer, NEW_PASSPHRASE)
