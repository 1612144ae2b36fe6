"""Polyseek's query side: open an index with the model that built it and answer queries."""

from search.searcher import Hit, Searcher
from search.stories import Story, StoryDetail, StoryDocument

__all__ = ["Searcher", "Hit", "Story", "StoryDetail", "StoryDocument"]
