"""The retention engine (MT-13, MT-14, MT-15), driven by an injectable clock.

- CDR and user data of an enterprise (accounts, sessions, custom roles, conferences, recordings and
  their files, its operation-log lines) are deleted once its contract ended 180 days ago or more.
- Server log files (`meeting-YYYY-MM-DD.log`) older than 180 days are deleted.
- Nothing younger is touched.

The region process runs it periodically; `roomtrust retention run` runs it by hand.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.common import oplog
from services.common.clock import Clock
from services.meeting.domain.recording import RecordingStorage
from services.meeting.store.models import (
    Account,
    AccountSession,
    CallLeg,
    CallRecord,
    Conference,
    CustomRole,
    Enterprise,
    OperationLogEntry,
    Recording,
)

RETENTION_DAYS = 180
LOG_FILE = re.compile(r"^meeting-(\d{4}-\d{2}-\d{2})\.log$")


@dataclass
class RetentionReport:
    enterprises: list[str] = field(default_factory=list)
    call_records: int = 0
    call_legs: int = 0
    accounts: int = 0
    recordings: int = 0
    log_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "enterprises": self.enterprises,
            "call_records": self.call_records,
            "call_legs": self.call_legs,
            "accounts": self.accounts,
            "recordings": self.recordings,
            "log_files": self.log_files,
        }


def contract_expired(contract_end: dt.date | None, now: dt.datetime, days: int) -> bool:
    if contract_end is None:
        return False
    purge_at = dt.datetime.combine(contract_end, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=days)
    return now >= purge_at


def _count(session: Session, statement: object) -> int:
    result = session.execute(statement)  # type: ignore[call-overload]
    return int(getattr(result, "rowcount", 0) or 0)


def purge_enterprise(
    session: Session,
    enterprise: Enterprise,
    storage: RecordingStorage | None,
    report: RetentionReport,
) -> None:
    eid = enterprise.id
    calls = select(CallRecord.id).where(CallRecord.enterprise_id == eid)
    report.call_legs += _count(session, delete(CallLeg).where(CallLeg.call_id.in_(calls)))
    report.call_records += _count(
        session, delete(CallRecord).where(CallRecord.enterprise_id == eid)
    )
    for recording in session.scalars(select(Recording).where(Recording.enterprise_id == eid)):
        if storage is not None:
            storage.delete(recording.id, recording.file_name)
        report.recordings += 1
    session.execute(delete(Recording).where(Recording.enterprise_id == eid))
    accounts = select(Account.id).where(Account.enterprise_id == eid)
    session.execute(delete(AccountSession).where(AccountSession.account_id.in_(accounts)))
    session.execute(delete(Conference).where(Conference.enterprise_id == eid))
    report.accounts += _count(session, delete(Account).where(Account.enterprise_id == eid))
    session.execute(delete(CustomRole).where(CustomRole.enterprise_id == eid))
    session.execute(delete(OperationLogEntry).where(OperationLogEntry.enterprise_id == eid))
    session.execute(delete(Enterprise).where(Enterprise.id == eid))
    report.enterprises.append(eid)


def purge_logs(log_dir: Path, now: dt.datetime, days: int, report: RetentionReport) -> None:
    if not log_dir.is_dir():
        return
    cutoff = now.date() - dt.timedelta(days=days)
    for path in sorted(log_dir.iterdir()):
        match = LOG_FILE.match(path.name)
        if match and dt.date.fromisoformat(match.group(1)) < cutoff:
            path.unlink(missing_ok=True)
            report.log_files.append(path.name)


def run(
    session: Session,
    clock: Clock,
    *,
    storage: RecordingStorage | None = None,
    log_dir: Path | None = None,
    days: int = RETENTION_DAYS,
) -> RetentionReport:
    now = clock.now()
    report = RetentionReport()
    for enterprise in list(
        session.scalars(select(Enterprise).where(Enterprise.contract_end.is_not(None)))
    ):
        if contract_expired(enterprise.contract_end, now, days):
            purge_enterprise(session, enterprise, storage, report)
    if log_dir is not None:
        purge_logs(log_dir, now, days, report)
    if report.enterprises or report.log_files:
        oplog.record(
            session,
            OperationLogEntry,
            at=now,
            actor="retention",
            action="retention.purge",
            enterprise_id=None,
            target=",".join(report.enterprises) or None,
            call_records=report.call_records,
            accounts=report.accounts,
            recordings=report.recordings,
            log_files=len(report.log_files),
        )
    return report
