"""MongoDB for every service: one client, the service's own database, GridFS blobs, a repository base."""

from .blobs import BlobNotFound, BlobStore, NewBlob, derived_blob_id
from .mongo import Storage
from .repository import Repository

__all__ = ["BlobNotFound", "BlobStore", "NewBlob", "Repository", "Storage", "derived_blob_id"]
