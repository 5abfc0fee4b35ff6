"""From parsed events to the label sets the metrics count.

Parsers report what a line says, including the relay host as logged and the
reply text. Neither may become a label value: the remote side chooses both,
without bound. Here they become bounded ones: the host a provider from the
suffix table (`remote`), the text of a 4xx or 5xx reply a reason from the
rule table. A 2xx reply has no reason to give. The scanner gives each event
the service its line counts under; past MAX_SERVICES of them, new ones
count as `other`.

Counts is one batch of label sets and their counts, per metric; the scanner
fills one per block of lines and the metrics take it in one call.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client.utils import floatToGoString

from exporter.providers import ProviderTable
from exporter.reasons import ReasonRules
from exporter.providers import OTHER
from exporter.replies import DELIVERY_STATUSES, INBOUND, OUTBOUND, Delay, Delivery, Event, Reply, Tls

# Label names, in the order of the tuples in Counts; service is always last.
REPLY_LABELS = ("direction", "code", "class", "enhanced", "stage", "remote", "service")
REASON_LABELS = ("direction", "class", "reason", "remote", "service")
DELIVERY_LABELS = ("status", "remote", "service")
TLS_LABELS = ("direction", "protocol", "trust", "service")
DELAY_LABELS = ("status", "service")

# The histograms' bucket bounds in seconds, fixed: from a message relayed at
# once to one given up after the usual 5-day queue lifetime.
DELAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
                 7200, 14400, 43200, 86400, 172800, 432000)
# A histogram's batch in Counts: (labels..., le) -> observations in that
# bucket alone (not cumulative), le the bucket's bound as exposed or "+Inf";
# (labels..., SUM) -> the sum of the observed values.
BUCKET_BOUNDS = (*map(floatToGoString, DELAY_BUCKETS), "+Inf")
SUM = "sum"


# Remote servers choose their replies: past this many reply label sets, new
# ones are counted in one set per direction and class, so a hostile peer
# cannot grow the series count (or memory) without bound, while totals by
# direction and class stay exact.
DEFAULT_MAX_REPLY_SERIES = 2000
OVERFLOW = "other"
# Room kept under the cap for those sets: 2 directions x 4 classes.
_OVERFLOW_SETS = 8


def capped_reply_key(key: tuple[str, ...], known: dict, limit: int) -> tuple[tuple[str, ...], bool]:
    """(the key to count a reply under, whether it was folded for the cap).

    known: the keys counted so far. A folded key has code, enhanced (and so
    stage, remote and service, for the bound to be strict) set to what says
    "past the cap"; folding one again gives itself.
    """
    if key in known or len(known) < limit - _OVERFLOW_SETS or key[1] == OVERFLOW:
        return key, False
    direction, _, reply_class, _, _, _, _ = key
    remote = "" if direction == INBOUND else OVERFLOW
    return (direction, OVERFLOW, reply_class, OVERFLOW, "unknown", remote, OVERFLOW), True


# The services a process counts under: set by the admin (syslog_name, the
# config), not by remote peers, but a local program can log under any tag.
MAX_SERVICES = 20
# Longer than any syslog tag an MTA writes (and than a configured name may
# be): a longer "tag" counts as `other`, so no label value is a line's worth.
MAX_SERVICE_CHARS = 64


class ServiceCap:
    """The first MAX_SERVICES services seen are labels of their own; later
    ones, and any longer than MAX_SERVICE_CHARS or holding a character that
    does not print, count under `other`. Neither `other` nor "" (counts
    restored from a state file written before the label existed) takes a
    place. One cap serves a process's labellers and its metrics, so that they
    agree on which services have names."""

    def __init__(self, limit: int = MAX_SERVICES) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def label(self, service: str) -> str:
        known = self.known
        if service in known or not service or service == OVERFLOW:
            return service
        if len(known) >= self.limit or len(service) > MAX_SERVICE_CHARS or not service.isprintable():
            return OVERFLOW
        known.add(service)
        return service


def zero_counts(service: str) -> Counts:
    """The label sets a service that delivers shows at 0 before their first
    count, so that its rates and ratios by status exist from its first
    delivery attempt on: its deliveries of each status (to `other`), and its
    delay histogram of each status. A service that never delivers (smtpd,
    submission) has none."""
    zero = Counts()
    for status in DELIVERY_STATUSES:
        zero.deliveries[(status, OTHER, service)] = 0
        for le in (*BUCKET_BOUNDS, SUM):
            zero.delays[(status, service, le)] = 0
    return zero


class Counts:
    """Label tuples -> counts, one dict per metric, and how many replies were
    folded for the series cap (smtp_exporter_label_overflow_total)."""

    __slots__ = ("replies", "reasons", "deliveries", "tls", "delays", "overflow")

    def __init__(self) -> None:
        self.replies: dict[tuple[str, ...], int] = {}
        self.reasons: dict[tuple[str, ...], int] = {}
        self.deliveries: dict[tuple[str, ...], int] = {}
        self.tls: dict[tuple[str, ...], int] = {}
        # Histograms: see BUCKET_BOUNDS.
        self.delays: dict[tuple[str, ...], float] = {}
        self.overflow = 0

    def __bool__(self) -> bool:
        return bool(self.replies or self.deliveries or self.tls or self.delays)


    def services(self) -> set[str]:
        """The services its label sets count under."""
        return {key[at] for name, at in _SERVICE_AT.items() for key in getattr(self, name)}

    def delivering_services(self) -> set[str]:
        """The services of its deliveries and delays."""
        return {key[_SERVICE_AT[name]] for name in ("deliveries", "delays") for key in getattr(self, name)}

    def with_services(self, labels: dict[str, str]) -> Counts:
        """A copy with each service replaced by its label in labels (several may become one)."""
        renamed = Counts()
        for name, at in _SERVICE_AT.items():
            into = getattr(renamed, name)
            for key, n in getattr(self, name).items():
                i = len(key) + at
                key = (*key[:i], labels[key[i]], *key[i + 1 :])
                into[key] = into.get(key, 0) + n
        renamed.overflow = self.overflow
        return renamed

    def merge(self, other: Counts, max_reply_series: int = DEFAULT_MAX_REPLY_SERIES) -> None:
        """Add other's counts, folding reply sets past the cap as the metrics do,
        so a long --once worker's tally stays as small as the metrics."""
        replies = self.replies
        for key, n in other.replies.items():
            key, folded = capped_reply_key(key, replies, max_reply_series)
            if folded:
                self.overflow += n
            replies[key] = replies.get(key, 0) + n
        # The others' label values are bounded: they just add up.
        for name in _ADDED:
            mine, theirs = getattr(self, name), getattr(other, name)
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        self.overflow += other.overflow


_ADDED = ("reasons", "deliveries", "tls", "delays")
# Where each batch's keys hold the service: last, but before `le` in a
# histogram's (see BUCKET_BOUNDS).
_SERVICE_AT = {"replies": -1, "reasons": -1, "deliveries": -1, "tls": -1, "delays": -2}


class Labeller:
    def __init__(self, providers: ProviderTable | None = None, reasons: ReasonRules | None = None,
                 services: ServiceCap | None = None) -> None:
        """services: the cap of the metrics the counts go to (a fresh one for a tally of its own)."""
        self.providers = providers if providers is not None else ProviderTable.bundled()
        self.reasons = reasons if reasons is not None else ReasonRules.default()
        self.services = services if services is not None else ServiceCap()

    def count(self, events: dict[str, dict[Event, int]], counts: Counts) -> None:
        """Add the label sets of a block's events (by the service they count
        under, each with how often it occurred) to counts."""
        for service, service_events in events.items():
            self._count(service_events, self.services.label(service), counts)

    def _count(self, events: dict[Event, int], service: str, counts: Counts) -> None:
        provider_of = self.providers.provider_of
        reason_of = self.reasons.reason
        replies, reasons, deliveries = counts.replies, counts.reasons, counts.deliveries
        for event, n in events.items():
            if type(event) is Reply:
                direction, code, reply_class, enhanced, stage, host, text = event
                remote = provider_of(host) if direction == OUTBOUND else ""
                reply_key = (direction, code, reply_class, enhanced, stage, remote, service)
                replies[reply_key] = replies.get(reply_key, 0) + n
                if reply_class[0] in "45":
                    reason_key = (direction, reply_class, reason_of(code, enhanced, text), remote, service)
                    reasons[reason_key] = reasons.get(reason_key, 0) + n
            elif type(event) is Delivery:
                delivery_key = (event[0], provider_of(event[1]), service)
                deliveries[delivery_key] = deliveries.get(delivery_key, 0) + n
            elif type(event) is Tls:
                tls = counts.tls
                tls_key = (*event, service)  # its fields are its labels
                tls[tls_key] = tls.get(tls_key, 0) + n
            elif type(event) is Delay:
                observe(counts.delays, (event[0], service), event[1], n)


def observe(histogram: dict[tuple[str, ...], float], labels: tuple[str, ...], value: float, n: int) -> None:
    """Add n observations of value to a histogram's batch (see BUCKET_BOUNDS)."""
    bucket = (*labels, BUCKET_BOUNDS[bisect_left(DELAY_BUCKETS, value)])
    histogram[bucket] = histogram.get(bucket, 0) + n
    total = (*labels, SUM)
    histogram[total] = histogram.get(total, 0) + value * n
