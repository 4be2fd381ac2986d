"""S3 error messages that say what is missing and what exists: a bucket that
names no branch lists the repo's branches, a bad bucket name states the naming
rule, a write to a tag names the tag. (The codes are S3's; these tests pin the
messages people read.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import LoxoServer

from gateway.client import Client


def s3_error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error.get("Message", ""))


def test_a_missing_branch_lists_the_repos_branches(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket("msg")
    s3.create_bucket(Bucket=f"{repo}.dev")
    expected = f"repo {repo} has no branch or tag clenaup; its branches are: dev, main"
    for call in (
        lambda: s3.put_object(Bucket=f"{repo}.clenaup", Key="k", Body=b"x"),
        lambda: s3.get_object(Bucket=f"{repo}.clenaup", Key="k"),
        lambda: s3.list_objects_v2(Bucket=f"{repo}.clenaup"),
        lambda: s3.delete_object(Bucket=f"{repo}.clenaup", Key="k"),
        lambda: s3.copy_object(
            Bucket=repo, Key="k", CopySource={"Bucket": f"{repo}.clenaup", "Key": "k"}
        ),
    ):
        code, message = s3_error(call)
        assert code == "NoSuchBucket"
        assert expected in message, message

    code, message = s3_error(lambda: s3.get_object(Bucket=f"{repo}.{'ab' * 16}", Key="k"))
    assert code == "NoSuchBucket"
    assert f"has no commit (or open commit) {'ab' * 16}" in message, message

    gone = f"{repo}-nope"
    code, message = s3_error(lambda: s3.put_object(Bucket=f"{gone}.main", Key="k", Body=b"x"))
    assert code == "NoSuchBucket"
    assert f"repo {gone} does not exist" in message, message


def test_a_long_branch_list_is_capped(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket("many")
    names = [f"b{i:02d}" for i in range(24)]
    for name in names:
        s3.create_bucket(Bucket=f"{repo}.{name}")
    # (HEAD answers no body, so no message: GET shows it.)
    code, message = s3_error(lambda: s3.get_object(Bucket=f"{repo}.nosuch", Key="k"))
    assert code == "NoSuchBucket"
    shown = sorted([*names, "main"])
    assert f"its branches are: {', '.join(shown[:20])} and 5 more" in message, message


def test_bad_bucket_names_state_the_rule(server: LoxoServer, s3: Any, aws_cli: Any) -> None:
    for name, why in (
        ("ab", "'ab' is 2 characters long, and bucket names are 3 to 63"),
        ("a.b.c", "has 2 dots"),
        ("-images", "starts or ends with a hyphen"),
        ("images.dev_x", "the branch name 'dev_x' has '_'"),
    ):
        code, message = s3_error(lambda name=name: s3.create_bucket(Bucket=name))
        assert code == "InvalidBucketName", (name, code)
        assert why in message, message
        assert "3 to 63 characters" in message and "lowercase letters" in message, message
        assert "32 hex digits reads as a commit id" in message, message
    made = aws_cli(server, "s3", "mb", "s3://Images", check=False)
    assert made.returncode != 0
    assert "InvalidBucketName" in made.stderr, made.stderr
    assert "the repo name 'Images' has 'I'" in made.stderr, made.stderr
    assert "not starting or ending with a hyphen" in made.stderr, made.stderr


def test_writing_to_a_tag_names_the_tag(server: LoxoServer, s3: Any, new_bucket: Any) -> None:
    repo = new_bucket("tagw")
    s3.put_object(Bucket=repo, Key="a", Body=b"a")
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as api:
        tag = api.create_tag(repo, "v1")
    for call in (
        lambda: s3.put_object(Bucket=f"{repo}.v1", Key="b", Body=b"b"),
        lambda: s3.delete_object(Bucket=f"{repo}.v1", Key="a"),
        lambda: s3.create_multipart_upload(Bucket=f"{repo}.v1", Key="m"),
    ):
        code, message = s3_error(call)
        assert code == "AccessDenied"
        assert f"{repo}.v1 is a tag (of commit {tag.commit}); tags are read-only" in message, (
            message
        )
        assert "snapshot" not in message, message
