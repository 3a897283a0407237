"""Abuse decisions and their effects: score each finished interval, soft-limit or block,
lift blocks. Blocks on keys live in the store (enforced by the admission script); blocks
on IPs travel in the config snapshot (checked before any key is looked at)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from abuse.models import AbuseEvent, AbuseScore, AbuseSignal, Block, BlockReason
from abuse.scoring import EwmaState, Thresholds, score, verdict
from gateway.config_publish import config_store
from tenants.models import ApiKey

log = logging.getLogger(__name__)
HISTORY_POINTS = 360  # an hour of 10 s intervals for the key's chart
SIGNAL_RETENTION = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Decision:
    subject: str
    action: str  # AbuseEvent.Action
    reason: str
    score: float | None = None


def thresholds() -> Thresholds:
    return Thresholds(z_flag=settings.ABUSE_ZSCORE_THRESHOLD, z_block=settings.ABUSE_BLOCK_ZSCORE,
                      warmup_intervals=settings.ABUSE_WARMUP_INTERVALS, min_rate=settings.ABUSE_MIN_RATE)


def _allowlisted_ip(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(cidr) for cidr in settings.ABUSE_ALLOWLIST_IPS)


def abuse_score_intervals(*, now: dt.datetime | None = None) -> list[Decision]:
    """Score every finished, unscored interval, oldest first. Idempotent: each signal row is
    scored once (marked in the same transaction as its decision)."""
    now = now or timezone.now()
    interval = dt.timedelta(seconds=settings.ABUSE_INTERVAL_SECONDS)
    # One more interval of grace: records reach the consumer a moment after they happen.
    finished_before = now - 2 * interval
    decisions: list[Decision] = []
    pending = AbuseSignal.objects.filter(scored=False, bucket_start__lte=finished_before).order_by("bucket_start")
    for signal in pending.iterator():
        with transaction.atomic():
            if signal.subject.startswith("k"):
                decisions.extend(_score_key(signal, interval, now))
            elif signal.subject.startswith("ip:"):
                decisions.extend(_score_ip(signal, interval, now))
            AbuseSignal.objects.filter(pk=signal.pk).update(scored=True)
    AbuseSignal.objects.filter(bucket_start__lt=now - SIGNAL_RETENTION).delete()
    return decisions


def _score_key(signal: AbuseSignal, interval: dt.timedelta, now: dt.datetime) -> list[Decision]:
    api_key = ApiKey.objects.select_related("tenant__plan").filter(pk=int(signal.subject[1:])).first()
    if api_key is None:
        return []
    state_row, _ = AbuseScore.objects.select_for_update().get_or_create(api_key=api_key)
    if state_row.last_bucket and signal.bucket_start <= state_row.last_bucket:
        return []  # already folded in (a late duplicate)
    previous = EwmaState(state_row.mean, state_row.variance, state_row.intervals)
    rate = signal.requests / interval.total_seconds()
    scored = score(previous, rate, settings.ABUSE_EWMA_ALPHA)
    state_row.mean, state_row.variance, state_row.intervals = (
        scored.state.mean, scored.state.variance, scored.state.intervals)
    state_row.last_bucket, state_row.last_z = signal.bucket_start, scored.z
    state_row.history = [*state_row.history, [signal.bucket_start.timestamp(), rate, round(scored.z, 3)]][
        -HISTORY_POINTS:]
    state_row.save()

    if api_key.pk in settings.ABUSE_ALLOWLIST_KEY_IDS:
        return []
    decisions = []
    errors = signal.errors_4xx + signal.errors_5xx
    error_rate = errors / signal.requests if signal.requests else 0.0
    if signal.requests >= settings.ABUSE_ERROR_STORM_MIN_REQUESTS and error_rate >= settings.ABUSE_ERROR_STORM_RATIO:
        decisions.append(_act_on_key(api_key, "block", BlockReason.ERROR_STORM, None, rate, error_rate, now,
                                     f"{errors} errors in {signal.requests} requests "
                                     f"({signal.errors_4xx} 4xx, {signal.errors_5xx} 5xx; 404s not counted)"))
    action = verdict(scored, previous, rate, thresholds())
    if action != "none" and not decisions:
        detail = f"{rate:.1f} req/s against an average of {previous.mean:.1f} (z = {scored.z:.1f})"
        decisions.append(_act_on_key(api_key, action, BlockReason.ANOMALY, scored.z, rate, error_rate, now, detail))
    return [d for d in decisions if d is not None]


def _act_on_key(api_key: ApiKey, action: str, reason: str, z: float | None, rate: float, error_rate: float,
                now: dt.datetime, detail: str) -> Decision | None:
    subject = f"k{api_key.pk}"
    if action == "block" and api_key.tenant.plan.exempt_from_auto_block:
        action = "soft_limit"  # this plan's keys are only ever slowed down automatically
    if action == "soft_limit":
        config_store().set_soft_limit(subject, settings.ABUSE_SOFT_LIMIT_FACTOR, settings.ABUSE_SOFT_LIMIT_SECONDS)
        AbuseEvent.objects.create(api_key=api_key, kind=reason, action=AbuseEvent.Action.SOFT_LIMIT, score=z,
                                  detail={"rate": rate, "error_rate": error_rate, "detail": detail,
                                          "factor": settings.ABUSE_SOFT_LIMIT_FACTOR})
        return Decision(subject, AbuseEvent.Action.SOFT_LIMIT, reason, z)
    if Block.objects.filter(api_key=api_key, lifted_at__isnull=True, expires_at__gt=now).exists():
        return None
    block_create(api_key=api_key, reason=reason, detail=detail, score=z, rate=rate, error_rate=error_rate)
    return Decision(subject, AbuseEvent.Action.BLOCKED, reason, z)


def _score_ip(signal: AbuseSignal, interval: dt.timedelta, now: dt.datetime) -> list[Decision]:
    """Key guessing: N distinct invalid keys from one address within a minute."""
    address = signal.subject[3:]
    if _allowlisted_ip(address):
        return []
    window_start = signal.bucket_start - dt.timedelta(seconds=60) + interval
    guesses: set[str] = set()
    for keys in AbuseSignal.objects.filter(subject=signal.subject, bucket_start__gte=window_start,
                                           bucket_start__lte=signal.bucket_start).values_list("failed_keys", flat=True):
        guesses.update(keys)
    if len(guesses) < settings.ABUSE_KEY_GUESSING_THRESHOLD:
        return []
    if Block.objects.filter(client_ip=address, lifted_at__isnull=True, expires_at__gt=now).exists():
        return []
    block_create(client_ip=address, reason=BlockReason.KEY_GUESSING,
                 detail=f"{len(guesses)} distinct invalid keys within a minute")
    return [Decision(signal.subject, AbuseEvent.Action.BLOCKED, BlockReason.KEY_GUESSING)]


@transaction.atomic
def block_create(*, api_key: ApiKey | None = None, client_ip: str | None = None, reason: str, detail: str = "",
                 score: float | None = None, rate: float | None = None, error_rate: float | None = None,
                 seconds: int | None = None) -> Block:
    seconds = seconds or settings.ABUSE_BLOCK_DURATION_SECONDS
    block = Block.objects.create(
        api_key=api_key, client_ip=client_ip, reason=reason, reason_detail=detail, anomaly_score=score,
        rate_at_block=rate, error_rate_at_block=error_rate, expires_at=timezone.now() + dt.timedelta(seconds=seconds),
    )
    AbuseEvent.objects.create(api_key=api_key, client_ip=client_ip, kind=reason, action=AbuseEvent.Action.BLOCKED,
                              score=score, detail={"detail": detail, "rate": rate, "error_rate": error_rate,
                                                   "seconds": seconds})
    if api_key is not None:
        # After commit: the row is the record; the store entry is what the gateways enforce.
        subject = f"k{api_key.pk}"
        transaction.on_commit(lambda: config_store().set_block(subject, seconds, reason))
    log.warning("blocked %s for %s s: %s", api_key or client_ip, seconds, detail)
    return block


@transaction.atomic
def block_lift(*, block: Block, by: AbstractBaseUser | None, reason: str) -> Block:
    if block.lifted_at is not None:
        return block
    block.lifted_at = timezone.now()
    block.lifted_by = by if by is not None and by.is_authenticated else None
    block.lift_reason = reason
    block.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    AbuseEvent.objects.create(api_key=block.api_key, client_ip=block.client_ip, kind=block.reason,
                              action=AbuseEvent.Action.UNBLOCKED,
                              detail={"reason": reason, "by": getattr(by, "username", None)})
    if block.api_key_id is not None:
        subject = f"k{block.api_key_id}"
        transaction.on_commit(lambda: config_store().clear_block(subject))
    return block


def api_key_unblock(*, api_key: ApiKey, by: AbstractBaseUser | None, reason: str) -> int:
    """Lift every active block of a key; returns how many there were."""
    active = Block.objects.filter(api_key=api_key, lifted_at__isnull=True, expires_at__gt=timezone.now())
    lifted = [block_lift(block=block, by=by, reason=reason) for block in active]
    # Also clear the store even with no row (a block set by hand, or a row already expired).
    transaction.on_commit(lambda: config_store().clear_block(f"k{api_key.pk}"))
    return len(lifted)


def blocks_active() -> list[Block]:
    return list(Block.objects.filter(lifted_at__isnull=True, expires_at__gt=timezone.now())
                .select_related("api_key"))
