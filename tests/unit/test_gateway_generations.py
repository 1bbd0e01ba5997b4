import asyncio

from winnow.services.gateway.generations import GenerationTracker


class WatchingShard:
    """Pushes its generation like the index shard's Watch stream; `cut()` breaks the stream."""

    def __init__(self, name):
        self.name = name
        self.generation = 7
        self.changed = asyncio.Event()
        self.broken = False

    def write(self):
        self.generation += 1
        self.changed.set()

    def cut(self):
        self.broken = True
        self.changed.set()

    async def watch(self):
        if self.broken:
            raise ConnectionError("down")
        yield self.generation
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.broken:
                raise ConnectionError("stream lost")
            yield self.generation


async def _until(pred, timeout=2.0):
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


async def test_tracks_pushed_generations_and_forgets_on_stream_loss():
    a, b = WatchingShard("a"), WatchingShard("b")
    tracker = GenerationTracker([a, b], retry_s=0.05)
    assert tracker.snapshot() is None
    tracker.start()
    await _until(lambda: tracker.snapshot() == [("a", 7), ("b", 7)])
    b.write()
    await _until(lambda: tracker.snapshot() == [("a", 7), ("b", 8)])
    a.cut()
    await _until(lambda: tracker.snapshot() is None)  # unknown: callers fall back to asking the shards
    a.broken = False
    await _until(lambda: tracker.snapshot() == [("a", 7), ("b", 8)])
    await tracker.stop()


async def test_own_write_acknowledgements_move_the_key_forward_never_back():
    a = WatchingShard("a")
    tracker = GenerationTracker([a])
    tracker.observe("a", 99)
    assert tracker.snapshot() is None  # nothing known before the stream speaks
    tracker.start()
    await _until(lambda: tracker.snapshot() == [("a", 7)])
    tracker.observe("a", 9)
    assert tracker.snapshot() == [("a", 9)]
    tracker.observe("a", 8)
    assert tracker.snapshot() == [("a", 9)]
    a.write()  # a late push of generation 8 must not move the key back to 8
    await asyncio.sleep(0.05)
    assert tracker.snapshot() == [("a", 9)]
    await tracker.stop()
