"""MongoDB for every service: one client, the service's own database, GridFS blobs, a repository base."""

from .blob_batch import BlobBatch, NewBlob
from .blobs import BlobNotFound, BlobStore, derived_blob_id
from .mongo import Storage
from .repository import Repository

__all__ = ["BlobBatch", "BlobNotFound", "BlobStore", "NewBlob", "Repository", "Storage", "derived_blob_id"]
