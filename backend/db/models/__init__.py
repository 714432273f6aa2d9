"""All ORM models, one aggregate a module. Importing this package registers every table."""

from backend.db.models.annotation import Adjudication, Annotation, Assignment
from backend.db.models.content import Comparison, Prompt, Response
from backend.db.models.dataset import DatasetSnapshot, ImportBatch
from backend.db.models.project import Project, ProjectMember
from backend.db.models.system import AuditEvent, WorkerHeartbeat
from backend.db.models.training import Metric, ModelArtifact, Round, TrainingJob
from backend.db.models.user import ApiToken, LoginAttempt, User, UserSession

__all__ = [
    "Adjudication",
    "Annotation",
    "ApiToken",
    "Assignment",
    "AuditEvent",
    "Comparison",
    "DatasetSnapshot",
    "ImportBatch",
    "LoginAttempt",
    "Metric",
    "ModelArtifact",
    "Project",
    "ProjectMember",
    "Prompt",
    "Response",
    "Round",
    "TrainingJob",
    "User",
    "UserSession",
    "WorkerHeartbeat",
]
