"""Signed S3 requests without botocore: signatures, credentials and region as AWS finds them."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from loopml.blobs.sigv4 import (
    Credentials,
    Response,
    find_credentials,
    find_region,
    sign,
    xml_values,
)

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_signature_matches_the_aws_documentation_example() -> None:
    # "GET Object" in the S3 Signature Version 4 documentation (header-based auth).
    headers = sign("GET", "examplebucket.s3.amazonaws.com", "/test.txt", "",
                   {"Range": "bytes=0-9"}, EMPTY_SHA256,
                   credentials=Credentials("AKIAIOSFODNN7EXAMPLE",
                                           "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                   region="us-east-1", now=datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC))
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert headers["x-amz-date"] == "20130524T000000Z"
    with_token = sign("GET", "h", "/k", "", {}, EMPTY_SHA256,
                      credentials=Credentials("a", "b", "token"), region="eu-west-1",
                      now=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC))
    assert with_token["x-amz-security-token"] == "token"
    assert "x-amz-security-token" in with_token["authorization"]


def _aws_files(tmp_path: Path, credentials: str, config: str) -> dict[str, str]:
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    return {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "config")}


def test_credentials_from_the_environment_then_the_profile(tmp_path: Path) -> None:
    files = _aws_files(tmp_path, "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n"
                       "[work]\naws_access_key_id = W\naws_secret_access_key = WS\n"
                       "aws_session_token = WT\n",
                       "[profile cfg]\naws_access_key_id = C\naws_secret_access_key = CS\n"
                       "region = eu-central-1\n")
    env = {**files, "AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "ES",
           "AWS_SESSION_TOKEN": "ET"}
    assert find_credentials(env) == Credentials("E", "ES", "ET")
    assert find_credentials(files) == Credentials("D", "DS")
    assert find_credentials({**files, "AWS_PROFILE": "work"}) == Credentials("W", "WS", "WT")
    assert find_credentials({**files, "AWS_PROFILE": "cfg"}) == Credentials("C", "CS")
    assert find_credentials({**files, "AWS_PROFILE": "nobody"}) is None
    assert find_region({**files, "AWS_PROFILE": "cfg"}) == "eu-central-1"
    assert find_region({**files, "AWS_PROFILE": "cfg", "AWS_DEFAULT_REGION": "ap-south-1"}) \
        == "ap-south-1"
    assert find_region({**files, "AWS_REGION": "us-west-2",
                        "AWS_DEFAULT_REGION": "ap-south-1"}) == "us-west-2"
    assert find_region(files) == "us-east-1"


def test_roles_and_other_sources_are_left_to_botocore(tmp_path: Path) -> None:
    files = _aws_files(tmp_path, "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n",
                       "[profile role]\nrole_arn = arn:aws:iam::1:role/r\n"
                       "source_profile = default\n"
                       "[profile proc]\ncredential_process = /bin/creds\n")
    assert find_credentials({**files, "AWS_PROFILE": "role"}) is None
    assert find_credentials({**files, "AWS_PROFILE": "proc"}) is None


def test_error_bodies_and_xml_values() -> None:
    body = (b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist"
            b"</Message></Error>")
    assert Response(404, {}, body).error() == ("NoSuchBucket",
                                               "The specified bucket does not exist")
    assert Response(500, {}, b"").error() == ("", "")
    listing = b"<R><Key>a/b&amp;c</Key><Key>d</Key><IsTruncated>false</IsTruncated></R>"
    assert xml_values(listing, "Key") == ["a/b&c", "d"]
    assert xml_values(listing, "NextContinuationToken") == []


@pytest.mark.s3
def test_no_credentials_is_one_clear_error(s3_endpoint: str, s3_bucket: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.blobs.s3 import S3Backend
    from loopml.errors import BackendUnavailable

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    backend = S3Backend(s3_bucket, "p", endpoint_url=s3_endpoint)
    with pytest.raises(BackendUnavailable, match="no AWS credentials found") as caught:
        backend.put_bytes("ab/" + "c" * 62, b"x")
    assert backend.url in str(caught.value)


def test_buckets_are_addressed_as_aws_and_compatible_servers_expect() -> None:
    from loopml.blobs.sigv4 import S3Client

    assert S3Client("data", region="eu-west-1")._target() == (
        "https", "data.s3.eu-west-1.amazonaws.com", "")
    assert S3Client("my.dotted.bucket", region="eu-west-1")._target() == (
        "https", "s3.eu-west-1.amazonaws.com", "/my.dotted.bucket")
    assert S3Client("data", endpoint_url="http://127.0.0.1:9000/", region="x")._target() == (
        "http", "127.0.0.1:9000", "/data")
