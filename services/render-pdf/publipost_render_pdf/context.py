from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

from .converter import ConverterPool
from .settings import RenderPdfSettings


@dataclass(frozen=True)
class RenderContext:
    settings: RenderPdfSettings
    storage: Storage
    bus: Bus
    converter: ConverterPool


Context = Annotated[RenderContext, Depends(components)]
