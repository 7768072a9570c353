"""AWS: a static site in S3, optionally behind CloudFront.

:class:`S3Store` is the object store the sync engine drives, on boto3 (imported only when a
command needs AWS, never to list tasks). boto3's own retries ("adaptive": backing off and
slowing down on 503 SlowDown, 429 and throttling) keep the parallel uploads within what S3
takes. :class:`AwsPlatform` adds the CloudFront invalidation of exactly the paths a deploy
changed. Credentials come through the project's resolver (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` from the environment or the secrets store), else from boto3's own
chain (``aws.profile``, SSO, instance roles); they never appear in any output.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import DevopsError, ErrorCode
from ..objectstore import Headers, ObjectStore, StoredObject
from .aws_signed import SignedS3, Unexpected
from .bucket import BucketPlatform

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = ["AwsPlatform", "S3Store"]

DEFAULT_REGION = "us-east-1"
#: Above this, a file goes up in parts (boto3's transfer manager), below it in one PUT.
MULTIPART_THRESHOLD = 64 << 20
#: CloudFront's price per invalidation path beyond the first 1,000 each month (a wildcard
#: path counts as one).
PRICE_PER_PATH_USD = 0.005
DEFAULT_MAX_PATHS = 100
WAIT_INTERVAL = 2.0
WAIT_TIMEOUT = 1800.0
#: Characters CloudFront takes as they are in an invalidation path; the rest are %-encoded.
_PATH_SAFE = "/-._~!$&'()+,;=:@"
#: Settings under which requests must go the way boto3 sends them: through a proxy.
_NOT_DIRECT = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
#: What S3 answers a conditional create whose key exists (or is being written).
_TAKEN = ("PreconditionFailed", "ConditionalRequestConflict")
_MISSING_FIX = (
    "Give AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment "
    "(CI) or in the secrets store (`devops secrets.set AWS_ACCESS_KEY_ID`, ...), or a "
    "profile (aws.profile, AWS_PROFILE; `aws configure`, `aws sso login`)."
)


class S3Store(ObjectStore):
    """One S3 bucket seen through a prefix.

    Requests go through ``signed`` (:mod:`.aws_signed`) when there is one, and through boto3
    otherwise, or when ``signed`` gets an answer it does not handle. The boto3 client is made
    only when first needed.
    """

    def __init__(
        self,
        client: Callable[[], BaseClient],
        bucket: str,
        prefix: str,
        region: str,
        signed: SignedS3 | None = None,
    ) -> None:
        self._make_client = client
        self._client: BaseClient | None = None
        self._client_guard = threading.Lock()
        self.signed = signed
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.location = f"s3://{bucket}/{prefix}"

    @property
    def identity(self) -> Hashable | None:
        # boto3's credential chain (profiles, SSO) is only known once boto3 resolves it
        return None if self.signed is None else ("s3", self.prefix, *self.signed.identity)

    @property
    def client(self) -> BaseClient:
        with self._client_guard:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    # -- objects ---------------------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        start = len(self.prefix)
        if self.signed is not None:
            try:  # every page before the first object is given out: a retry starts afresh
                listed = [*self.signed.listing(self.prefix + prefix)]
            except Unexpected:
                pass
            else:
                yield from (StoredObject(k[start:], size, tag or None) for k, size, tag in listed)
                return
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        with _translated("list", self.location):
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"][start:], int(item["Size"]), _tag(item))

    def get(self, key: str) -> bytes | None:
        with contextlib.suppress(Unexpected):
            if self.signed is not None:
                return self.signed.get(self.prefix + key)
        try:
            with _translated("read", self._url(key), absent=("NoSuchKey", "404")):
                response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
                return bytes(response["Body"].read())
        except _Absent:
            return None

    def holds(self, key: str, seen: bytes | None) -> bool:
        with contextlib.suppress(Unexpected):
            if self.signed is not None and seen is not None:
                return self.signed.holds(self.prefix + key, seen)
        return super().holds(key, seen)

    def put(self, key: str, body: IO[bytes], size: int, headers: Headers) -> str | None:
        if size > MULTIPART_THRESHOLD:
            with _translated("upload", self._url(key)):
                self.client.upload_fileobj(
                    body, self.bucket, self.prefix + key, ExtraArgs=_header_args(headers)
                )
                return _tag(self.client.head_object(Bucket=self.bucket, Key=self.prefix + key))
        data = body.read(size)
        with contextlib.suppress(Unexpected):
            if self.signed is not None:
                return self.signed.put(self.prefix + key, data, _http_headers(headers))
        with _translated("upload", self._url(key)):
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                ContentLength=size,
                **_header_args(headers),
            )
            return _tag(response)

    def copy(
        self, source: str, key: str, headers: Headers, origin: ObjectStore | None = None
    ) -> str | None:
        store = self.origin(origin)
        with contextlib.suppress(Unexpected):
            if self.signed is not None:
                return self.signed.copy(
                    f"{store.bucket}/{store.prefix}{source}",
                    self.prefix + key,
                    _http_headers(headers),
                )
        with _translated("copy", f"{store._url(source)} to {self._url(key)}"):
            response = self.client.copy_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                CopySource={"Bucket": store.bucket, "Key": store.prefix + source},
                MetadataDirective="REPLACE",
                **_header_args(headers),
            )
            return _tag(response["CopyObjectResult"])

    def delete(self, keys: Iterable[str]) -> None:
        keys = iter(keys)
        while batch := tuple(itertools.islice(keys, 1000)):  # DeleteObjects' limit
            self._delete(batch)

    def _delete(self, keys: tuple[str, ...]) -> None:
        with contextlib.suppress(Unexpected):
            if self.signed is not None:
                self.signed.delete([self.prefix + k for k in keys])
                return
        if len(keys) == 1:  # one object (a lock): the plain DELETE, no XML to build
            with _translated("delete", self._url(keys[0])):
                self.client.delete_object(Bucket=self.bucket, Key=self.prefix + keys[0])
            return
        with _translated("delete", self.location):
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.prefix + k} for k in keys], "Quiet": True},
            )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"S3 did not delete {len(errors)} object(s) of {self.location}: "
                f"{first.get('Key')}: {first.get('Code')}",
                "Check the permissions (s3:DeleteObject) and run the command again.",
            )

    def create(self, key: str, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        with contextlib.suppress(Unexpected):
            if self.signed is not None:
                return self.signed.create(self.prefix + key, body, headers)
        try:
            with _translated("create", self._url(key), absent=_TAKEN):
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=body,
                    IfNoneMatch="*",
                    ContentType="application/json",
                    CacheControl="no-store",
                )
        except _Absent:
            return False
        return True

    def close(self) -> None:
        if self.signed is not None:
            self.signed.close()
        if self._client is not None:
            self._client.close()

    # -- the bucket ------------------------------------------------------------------------

    def bucket_exists(self) -> bool:
        try:
            with _translated("look up", f"s3://{self.bucket}", absent=("404", "NoSuchBucket")):
                self.client.head_bucket(Bucket=self.bucket)
        except _Absent:
            return False
        return True

    def create_bucket(self) -> None:
        where = {}
        if self.region != DEFAULT_REGION:  # us-east-1 refuses its own name as a constraint
            where = {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        with _translated("create", f"s3://{self.bucket}"):
            self.client.create_bucket(Bucket=self.bucket, **where)

    def configure_website(self, index: str, error: str) -> None:
        with _translated("configure the website of", f"s3://{self.bucket}"):
            self.client.put_bucket_website(
                Bucket=self.bucket,
                WebsiteConfiguration={
                    "IndexDocument": {"Suffix": index},
                    "ErrorDocument": {"Key": self.prefix + error},
                },
            )

    def allow_public_read(self) -> None:
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicReadForDevopsTasksSite",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{self.bucket}/{self.prefix}*",
                }
            ],
        }
        with _translated("make public", f"s3://{self.bucket}"):
            self.client.put_public_access_block(
                Bucket=self.bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": False,
                    "RestrictPublicBuckets": False,
                },
            )
            self.client.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy))

    def delete_bucket(self) -> None:
        with _translated("delete", f"s3://{self.bucket}"):
            self.client.delete_bucket(Bucket=self.bucket)

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


class AwsPlatform(BucketPlatform):
    """S3 (+ CloudFront): ``aws.bucket``, ``aws.region``, ``aws.cloudfront_distribution_id``."""

    name = "aws"
    first_steps = ("devops config.set aws.bucket your-bucket-name", "devops infra.up")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bucket = str(self.options.get("bucket") or "")
        self.distribution: str | None = self.options.get("cloudfront_distribution_id")
        self.max_paths = int(self.options.get("invalidation_max_paths", DEFAULT_MAX_PATHS))
        self._session: Any = None

    # -- clients ---------------------------------------------------------------------------

    @property
    def region(self) -> str:
        """aws.region, AWS_REGION, AWS_DEFAULT_REGION, a profile's own, else us-east-1."""
        chosen = (
            self.options.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        if not chosen and not self._keys():  # only a profile can name one then
            chosen = self._boto_session().region_name
        return str(chosen or DEFAULT_REGION)

    def _keys(self) -> dict[str, Any]:
        """Plain keys from the environment or the secrets store ({} to use boto3's chain)."""
        key_id = self.credentials.lookup("AWS_ACCESS_KEY_ID")
        secret = self.credentials.lookup("AWS_SECRET_ACCESS_KEY")
        if not (key_id and secret):
            return {}
        return {
            "aws_access_key_id": key_id,
            "aws_secret_access_key": secret,
            "aws_session_token": self.credentials.lookup("AWS_SESSION_TOKEN"),
        }

    def _boto_session(self) -> Any:
        if self._session is None:
            try:
                import boto3  # noqa: PLC0415 - only AWS commands pay for it
            except ImportError as exc:
                raise DevopsError(
                    ErrorCode.NOT_SUPPORTED,
                    "The aws target needs boto3, which is not installed",
                    "Install the AWS extra: pip install 'devops-tasks[aws]'.",
                ) from exc
            keys = self._keys()
            profile = None if keys else self.options.get("profile")
            with _translated("open a session for", "AWS"):
                self._session = boto3.session.Session(profile_name=profile, **keys)
        return self._session

    def _client(self, service: str) -> Any:
        from botocore.config import Config  # noqa: PLC0415

        from .. import __version__  # noqa: PLC0415

        endpoint = self.config["endpoint_url"] or None
        custom = self._endpoint()
        config = Config(
            retries={"mode": "adaptive", "max_attempts": 8},
            max_pool_connections=int(self.config["concurrency"]) + 4,
            connect_timeout=10,
            read_timeout=60,
            # a checksum over every body costs CPU; S3 checks Content-Length and TLS the rest
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path" if custom else "auto"},
            user_agent_extra=f"devops-tasks/{__version__}",
        )
        region = DEFAULT_REGION if service == "cloudfront" else self.region
        with _translated("connect to", service):
            return self._boto_session().client(
                service, region_name=region, endpoint_url=endpoint, config=config
            )

    def open_store(self) -> ObjectStore:
        return S3Store(
            lambda: self._client("s3"), self.bucket, self.prefix, self.region, self._signed()
        )

    def _signed(self) -> SignedS3 | None:
        """The lean transport, for plain keys reaching S3 directly (not through a proxy)."""
        keys = self._keys()
        if not keys or any(os.environ.get(name) for name in _NOT_DIRECT):
            return None
        return SignedS3(
            self.bucket,
            self.region,
            keys["aws_access_key_id"],
            keys["aws_secret_access_key"],
            keys["aws_session_token"],
            endpoint=self._endpoint(),
            ca_bundle=os.environ.get("AWS_CA_BUNDLE") or None,
        )

    def _endpoint(self) -> str | None:
        return (
            self.config["endpoint_url"]
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )

    def site_url(self) -> str | None:
        if self.config["endpoint_url"] or not self.bucket:
            return None
        return f"http://{self.bucket}.s3-website.{self.region}.amazonaws.com/{self.prefix}"

    # -- CloudFront ------------------------------------------------------------------------

    def cdn_invalidate(self, paths: list[str]) -> dict[str, Any] | None:
        if not self.distribution:
            return None
        wildcard = len(paths) > self.max_paths
        items = ["/*"] if wildcard else [quote(p, safe=_PATH_SAFE) for p in paths]
        with _translated("invalidate", f"CloudFront distribution {self.distribution}"):
            response = self._client("cloudfront").create_invalidation(
                DistributionId=self.distribution,
                InvalidationBatch={
                    "Paths": {"Quantity": len(items), "Items": items},
                    "CallerReference": f"devops-tasks-{os.urandom(16).hex()}",
                },
            )
        invalidation = response["Invalidation"]
        result = {
            "id": invalidation["Id"],
            "status": invalidation["Status"],
            "distribution": self.distribution,
            "paths": items[:20],
            "path_count": len(paths),
            "wildcard": wildcard,
            # the first 1,000 paths a month are free; a wildcard counts as one path
            "estimated_cost_usd": round(len(items) * PRICE_PER_PATH_USD, 3),
        }
        if wildcard:
            result["listed_cost_usd"] = round(len(paths) * PRICE_PER_PATH_USD, 3)
        return result

    def cdn_wait(self, invalidation: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_TIMEOUT
        client = self._client("cloudfront")
        while True:
            status = self._invalidation_status(client, invalidation["id"])
            if status.lower() == "completed":  # CloudFront says Completed, moto COMPLETED
                return {**invalidation, "status": status, "waited": True}
            if time.monotonic() >= deadline:
                raise DevopsError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    f"CloudFront invalidation {invalidation['id']} was still {status} after "
                    f"{WAIT_TIMEOUT:.0f} s",
                    "The deploy is live; the invalidation goes on. Check it with `devops logs`.",
                )
            time.sleep(WAIT_INTERVAL)

    def _invalidation_status(self, client: Any, invalidation_id: str) -> str:
        with _translated("read", f"CloudFront invalidation {invalidation_id}"):
            response = client.get_invalidation(DistributionId=self.distribution, Id=invalidation_id)
        return str(response["Invalidation"]["Status"])

    def cdn_state(self) -> dict[str, Any] | None:
        if not self.distribution:
            return None
        client = self._client("cloudfront")
        with _translated("read", f"CloudFront distribution {self.distribution}"):
            distribution = client.get_distribution(Id=self.distribution)["Distribution"]
            listed = client.list_invalidations(DistributionId=self.distribution, MaxItems="5")
        return {
            "distribution": self.distribution,
            "status": distribution.get("Status"),
            "domain": distribution.get("DomainName"),
            "invalidations": [
                {"id": item["Id"], "status": item["Status"], "created": str(item["CreateTime"])}
                for item in listed.get("InvalidationList", {}).get("Items", [])
            ],
        }

    def deployment_log(self, platform_deploy_id: str) -> dict[str, Any]:
        log = super().deployment_log(platform_deploy_id)
        ids = [e["invalidation"] for e in log["events"] if e.get("invalidation")]
        if ids and self.distribution:
            client = self._client("cloudfront")
            log["invalidations"] = [
                {"id": i, "status": self._invalidation_status(client, i)} for i in ids
            ]
        return log


# -- AWS errors as the project's ---------------------------------------------------------------


class _Absent(Exception):
    """An AWS answer that means "not there" (or "already there", for a conditional create)."""


@contextlib.contextmanager
def _translated(action: str, what: str, absent: tuple[str, ...] = ()) -> Iterator[None]:
    """Any botocore failure inside becomes a DevopsError naming the operation and the object
    (never a credential); AWS error codes or HTTP statuses in ``absent`` raise
    :class:`_Absent` for the caller to handle."""
    try:
        yield
    except DevopsError:
        raise
    except Exception as exc:
        error = _aws_error(exc, f"(to {action} {what})", absent)
        if error is None:
            raise
        raise error from (None if isinstance(error, _Absent) else exc)


def _aws_error(exc: Exception, why: str, absent: tuple[str, ...]) -> Exception | None:
    from botocore import exceptions as boto  # noqa: PLC0415

    from ..secrets.aws import _REFUSED as REFUSED_CODES  # noqa: PLC0415 - only on a failure

    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in absent or str(status) in absent:
            return _Absent(code)
        message = str(error.get("Message") or "").strip()
        said = code + (f" ({message})" if message else "")
        if code in REFUSED_CODES or code in ("AllAccessDisabled", "InvalidAccessKeyId"):
            return DevopsError(
                ErrorCode.CREDENTIALS_INVALID,
                f"AWS refused the credentials {why}: {said}",
                "Check that the credentials are current and that their policy allows "
                "s3:ListBucket, GetObject, PutObject, DeleteObject on the bucket (and "
                "cloudfront:CreateInvalidation, GetInvalidation with a distribution).",
                aws_error=code,
            )
        if code == "NoSuchBucket":
            return DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"The bucket does not exist {why}",
                "Create it with `devops infra.up`, or fix aws.bucket.",
                aws_error=code,
            )
        return DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"AWS failed {why}: {said}",
            "Run the command again; if it keeps failing, check the AWS error above.",
            aws_error=code,
        )
    if isinstance(
        exc, (boto.NoCredentialsError, boto.PartialCredentialsError, boto.ProfileNotFound)
    ):
        return DevopsError(ErrorCode.CREDENTIALS_MISSING, f"No AWS credentials {why}", _MISSING_FIX)
    if isinstance(exc, (boto.ConnectionError, boto.HTTPClientError)):
        return DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"Could not reach AWS {why}",
            "Check the network, aws.region and aws.endpoint_url, then run it again.",
            unreachable=True,
        )
    if isinstance(exc, boto.BotoCoreError):
        return DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"AWS failed {why}: {type(exc).__name__}",
            "Run the command again; check the AWS configuration if it keeps failing.",
        )
    return None


def _tag(response: Any) -> str | None:
    etag = response.get("ETag")
    return str(etag).strip('"') if etag else None


def _named(headers: Headers, names: tuple[str, str, str]) -> dict[str, str]:
    """Content-Type, Cache-Control and Content-Encoding (those set) under ``names``."""
    values = (headers.content_type, headers.cache_control, headers.content_encoding)
    return {name: value for name, value in zip(names, values, strict=True) if value}


def _http_headers(headers: Headers) -> dict[str, str]:
    """As HTTP headers, for a signed request."""
    return _named(headers, ("Content-Type", "Cache-Control", "Content-Encoding"))


def _header_args(headers: Headers) -> dict[str, str]:
    """As boto3's arguments."""
    return _named(headers, ("ContentType", "CacheControl", "ContentEncoding"))
