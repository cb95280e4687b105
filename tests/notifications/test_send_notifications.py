"""`manage.py send_notifications`: every option, every bad input, resuming with --key."""

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from notifications import services
from notifications.management.commands import send_notifications as command
from notifications.models import Notification
from tests.support.factories import make_user
from tests.support.published import published

pytestmark = pytest.mark.django_db(transaction=True)  # batches commit, then publish

SUMMARY = re.compile(r"^sent (\d+) notifications to (\d+) users in [0-9.]+ s \(\d+/s\)$", re.M)


class TTY(StringIO):
    def isatty(self) -> bool:
        return True


def send(*args: str, stdout=None) -> tuple[str, str]:
    out, err = stdout or StringIO(), StringIO()
    call_command("send_notifications", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def inbox() -> dict[str, list[str]]:
    """username → titles received."""
    out: dict[str, list[str]] = {}
    for username, title in Notification.objects.values_list("recipient__username", "title"):
        out.setdefault(username, []).append(title)
    return out


@pytest.fixture
def users(alice, bob, charlie):
    make_user("dormant", is_active=False)
    ops = Group.objects.create(name="ops")
    dev = Group.objects.create(name="dev")
    alice.groups.add(ops, dev)
    bob.groups.add(ops)
    return {"alice": alice, "bob": bob, "charlie": charlie, "ops": ops, "dev": dev}


def test_all_sends_one_to_every_active_user_and_prints_a_summary(users):
    out, err = send("--title", "Hello", "--all")
    assert inbox() == {"alice": ["Hello"], "bob": ["Hello"], "charlie": ["Hello"]}
    assert SUMMARY.search(out).groups() == ("3", "3")
    assert re.fullmatch(r"sending to 3 recipients with key send-\S+; .*\n", err)


def test_every_content_option_lands_in_the_notification(users):
    send("--title", "T", "--body", "B", "--level", "warning", "--url", "/x/", "--users", "bob")
    n = Notification.objects.get()
    assert (n.recipient, n.title, n.body, n.level, n.url) == (
        users["bob"], "T", "B", "warning", "/x/"
    )  # fmt: skip
    assert n.send_key.startswith("send-")  # a key even when none is given, to resume with


def test_groups_send_once_to_members_of_any_of_them(users):
    send("--title", "Ops", "--group", "ops", "dev")
    assert inbox() == {"alice": ["Ops"], "bob": ["Ops"]}


def test_users_accepts_comma_lists_repeated_and_deduplicated(users):
    out, _ = send("--title", "Hi", "--users", "alice, bob", "--users", "alice")
    assert inbox() == {"alice": ["Hi"], "bob": ["Hi"]}
    assert SUMMARY.search(out).groups() == ("2", "2")


def test_users_takes_several_values_after_one_flag_as_the_synopsis_shows(users):
    out, _ = send("--title", "Hi", "--users", "alice", "bob,charlie", "--users", "alice")
    assert inbox() == {"alice": ["Hi"], "bob": ["Hi"], "charlie": ["Hi"]}
    assert SUMMARY.search(out).groups() == ("3", "3")


def test_inactive_named_users_are_skipped_with_a_note(users):
    _, err = send("--title", "Hi", "--users", "alice,dormant")
    assert inbox() == {"alice": ["Hi"]}
    assert "skipping inactive user: dormant" in err


@pytest.mark.parametrize(
    "content",
    [
        "alice\nbob\n",
        "username\nalice\n\nbob\n",
        "email,username\na@example.com,alice\nb@example.com,bob\n",
        "\ufeffalice\r\nbob\r\nalice\r\n",
    ],
    ids=["plain", "header", "username-column", "bom-crlf-duplicate"],
)
def test_file_reads_usernames_from_csv(users, tmp_path: Path, content: str):
    path = tmp_path / "users.csv"
    path.write_text(content, encoding="utf-8")
    send("--title", "From file", "--file", str(path))
    assert inbox() == {"alice": ["From file"], "bob": ["From file"]}


def test_batch_size_sets_the_transaction_and_publish_size(users, monkeypatch):
    sizes = []
    real = services.notifications_send_batch

    def counting(**kwargs):
        sizes.append(len(kwargs["recipient_ids"]))
        return real(**kwargs)

    monkeypatch.setattr(command, "notifications_send_batch", counting)
    send("--title", "Batched", "--all", "--batch-size", "2")
    assert sizes == [2, 1]
    assert len(inbox()) == 3


def test_each_notification_is_published_live_with_the_unread_count(users, pubsub):
    send("--title", "Live", "--users", "alice,bob")
    messages = published(pubsub)
    channels = sorted(m["channel"] for m in messages)
    assert channels == sorted([f"user-{users['alice'].pk}", f"user-{users['bob'].pk}"])
    assert {json.loads(m["data"])["title"] for m in messages} == {"Live"}
    assert {json.loads(m["data"])["unread"] for m in messages} == {1}


def test_dry_run_prints_the_count_and_a_sample_and_writes_nothing(users, pubsub):
    out, _ = send("--title", "Maybe", "--all", "--dry-run")
    assert "dry run, nothing written: 3 recipients (all active users)" in out
    assert "sample: alice, bob, charlie" in out
    assert not Notification.objects.exists()
    assert published(pubsub) == []


def test_a_tty_gets_a_progress_bar(users):
    out, _ = send("--title", "Bar", "--all", "--batch-size", "1", stdout=TTY())
    assert "\r[" in out
    assert "100%" in out
    assert "3/3" in out
    assert SUMMARY.search(out)


# ---------------------------------------------------------------- --key


def test_rerunning_with_the_same_key_sends_nothing_twice(users):
    send("--title", "Once", "--all", "--key", "launch")
    out, _ = send("--title", "Once", "--all", "--key", "launch")
    assert "nothing to send: all 3 recipients already have key launch" in out
    assert inbox() == {"alice": ["Once"], "bob": ["Once"], "charlie": ["Once"]}


def test_a_rerun_sends_only_to_those_not_yet_reached(users):
    Notification.objects.create(recipient=users["bob"], title="Resume", send_key="resume")
    out, _ = send("--title", "Resume", "--all", "--key", "resume", "--dry-run")
    assert "1 already have key resume and would be skipped" in out
    out, _ = send("--title", "Resume", "--all", "--key", "resume")
    assert SUMMARY.search(out).groups() == ("2", "2")
    assert "skipped 1 who already had key resume" in out
    assert inbox() == {"alice": ["Resume"], "bob": ["Resume"], "charlie": ["Resume"]}


def test_a_run_that_crashes_part_way_resumes_with_its_key_and_nobody_gets_two(users, monkeypatch):
    real = services.notifications_send_batch
    calls = []

    def crash_on_second_batch(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(command, "notifications_send_batch", crash_on_second_batch)
    err = StringIO()
    with pytest.raises(ConnectionError):
        call_command(
            "send_notifications", "--title", "Crash", "--all", "--batch-size", "1", stderr=err
        )
    key = re.search(r"--key (\S+)", err.getvalue())[1]
    assert inbox() == {"alice": ["Crash"]}  # the first batch committed

    monkeypatch.setattr(command, "notifications_send_batch", real)
    out, _ = send("--title", "Crash", "--all", "--key", key)
    assert SUMMARY.search(out).groups() == ("2", "2")
    assert inbox() == {"alice": ["Crash"], "bob": ["Crash"], "charlie": ["Crash"]}


def test_the_key_is_printed_before_the_first_batch_so_a_killed_run_can_resume(users, monkeypatch):
    err = StringIO()
    printed_before_sending = []

    def killed(**kwargs):
        printed_before_sending.append(f"--key {kwargs['send_key']}" in err.getvalue())
        raise SystemExit(-9)  # as far as output goes, SIGKILL: no handler runs after this

    monkeypatch.setattr(command, "notifications_send_batch", killed)
    with pytest.raises(SystemExit):
        call_command("send_notifications", "--title", "Killed", "--all", stderr=err)
    assert printed_before_sending == [True]


def test_ctrl_c_stops_with_exit_130_and_says_how_to_resume(users, monkeypatch):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "notifications_send_batch", interrupted)
    with pytest.raises(CommandError, match=r"interrupted: .*--key k1") as err:
        send("--title", "Stop", "--all", "--key", "k1")
    assert err.value.returncode == 130


# ---------------------------------------------------------------- bad input: message, no writes


def csv_file(tmp_path: Path, content: bytes | str) -> str:
    path = tmp_path / "users.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group", "ops", "nope", "nada"], "unknown groups: nope, nada"),
        (["--users", "alice,zed,bob,yan"], "unknown usernames: zed, yan"),
        (["--users", " , "], "--users needs at least one username"),
        (["--users", "dormant"], "no recipients: the named users has no active users"),
        (["--group", "empty"], "no recipients: members of empty has no active users"),
        (["--file", "{tmp}/missing.csv"], "cannot read .*missing.csv: No such file"),
        (["--file", "{tmp}"], "cannot read"),
        (["--file", "@latin1"], "not UTF-8 text"),
        (["--file", "@columns"], r"line 3: expected 2 columns, got 1"),
        (["--file", "@quote"], r"line 2: malformed CSV"),
        (["--file", "@empty-name"], r"line 2: empty username"),
        (["--file", "@unknown"], r"unknown username: zed \(line 2\)"),
        (["--file", "@blank"], "no recipients"),
    ],
)
def test_bad_audiences_are_refused_with_a_clear_message(users, tmp_path, args, message):
    Group.objects.create(name="empty")
    files = {
        "@latin1": b"alice\nb\xe9b\n",
        "@columns": "username,email\nalice,a@x\nbob\n",
        "@quote": 'alice\n"bob"x\n',
        "@empty-name": "username,email\n,a@x\n",
        "@unknown": "alice\nzed\n",
        "@blank": "\n\n",
    }
    args = [csv_file(tmp_path, files[a]) if a in files else a for a in args]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(CommandError, match=message):
        send("--title", "Bad", *args)
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--title", "", "--all"], "title must not be empty"),
        (["--title", "x" * 201, "--all"], "title is longer than 200"),
        (["--title", "x", "--body", "b" * 5001, "--all"], "body is longer than 5000"),
        (["--title", "x", "--url", "javascript:alert(1)", "--all"], "url must be a path"),
        (["--title", "x", "--level", "panic", "--all"], "invalid choice: 'panic'"),
        (["--title", "x", "--all", "--batch-size", "0"], "--batch-size must be between"),
        (["--title", "x", "--all", "--batch-size", "many"], "invalid int value"),
        (["--title", "x", "--all", "--key", "k" * 101], "--key must be printable"),
        (["--title", "x", "--all", "--key", " padded "], "--key must be printable"),
        (["--title", "x"], "one of the arguments --all --group --users --file is required"),
        (["--title", "x", "--all", "--group", "ops"], "not allowed with argument"),
        (["--all"], "the following arguments are required: --title"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(users, args, message):
    with pytest.raises(CommandError, match=message):
        send(*args)
    assert not Notification.objects.exists()


def test_a_file_of_secrets_is_not_echoed_back_as_unknown_usernames(users, tmp_path):
    # `--file /etc/shadow` by mistake (or on purpose): each line is an "unknown username".
    secrets_ = [f"root{i}:$6$salt$" + "h" * 80 + f":19000:0:99999:7:::{i}" for i in range(29)]
    secrets_.insert(1, "\x1b]0;pwned\x07bob")  # a terminal escape is not passed through
    with pytest.raises(CommandError) as refused:
        send("--title", "x", "--file", csv_file(tmp_path, "\n".join(secrets_) + "\n"))
    message = str(refused.value)
    assert message.startswith("30 unknown usernames: ")
    assert message.endswith(" and 25 more")
    shown = message.removeprefix("30 unknown usernames: ").removesuffix(" and 25 more")
    assert len(shown.split(", ")) == 5
    assert all(len(name) <= 60 for name in shown.split(", "))  # 40 characters + "… (line N)"
    assert not any(secret in message for secret in secrets_)
    assert "\x1b" not in message and "\x07" not in message
    assert "root5" not in message
    assert not Notification.objects.exists()
