"""MongoDB for every service: one client, the service's own database, GridFS blobs, a repository base."""

from .blobs import BlobNotFound, BlobStore, NewBlob, belongs_to, derived_blob_id
from .entities import Entities
from .mongo import Storage
from .outage import UNREACHABLE, once_reachable
from .repository import Repository
from .schema import Migrated, Schema, Upgrade

__all__ = [
    "UNREACHABLE",
    "BlobNotFound",
    "BlobStore",
    "Entities",
    "Migrated",
    "NewBlob",
    "Repository",
    "Schema",
    "Storage",
    "Upgrade",
    "belongs_to",
    "derived_blob_id",
    "once_reachable",
]
