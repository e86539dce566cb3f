from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_runtime import components

from .repository import RecipientRepository
from .settings import RecipientDirectorySettings


@dataclass(frozen=True)
class DirectoryContext:
    settings: RecipientDirectorySettings
    recipients: RecipientRepository


Context = Annotated[DirectoryContext, Depends(components)]
