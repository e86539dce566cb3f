from collections.abc import Sequence
from typing import ClassVar

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase


class Repository:
    """Base of every repository: one collection owned by the service, its indexes made at start to be
    those it declares. An index it no longer declares is dropped: every index costs each write."""

    collection_name: ClassVar[str]
    indexes: ClassVar[Sequence[IndexModel]] = ()

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection: AsyncCollection = db[self.collection_name]

    async def ensure_indexes(self) -> None:
        if self.indexes:
            await self.collection.create_indexes(list(self.indexes))
        declared = {index.document["name"] for index in self.indexes} | {"_id_"}
        for name in await self.collection.index_information():
            if name not in declared:
                await self.collection.drop_index(name)
