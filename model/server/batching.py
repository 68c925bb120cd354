"""Dynamic batching of concurrent predict calls, as --enable_batching does in TF Serving.

Calls to the same version and signature (with the same per-row shapes) queue together; a
batch closes when it reaches max_batch_size or its first call has waited
batch_timeout_micros, and num_batch_threads workers run closed batches, at most
max_enqueued_batches waiting per queue. A full queue answers UNAVAILABLE at once, so a
burst never hangs. Each caller gets back exactly its own rows.

The waiting callers are the batch threads: a caller whose task is queued runs any batch that
may run now while fewer than num_batch_threads batches are running, and otherwise sleeps until
one finishes or a batch's timeout passes. Handing every call to a batch thread and back made a
lone call's p50 1.23-1.26x that of no batching; run by the callers it is 0.99-1.04x
(loadtests/bench/optimisations.yaml). With batch_timeout_micros 0, nothing queued and a batch
thread free, a call's batch would be itself alone, so it runs as it is: no queue entry, no
merge of its tensors and no split of the answer (~45 us less CPU per lone call).
"""
import collections
import dataclasses
import logging
import os
import threading
import time

import numpy as np

from model.server import protos
from model.server.errors import DeadlineExceeded, InvalidArgument, Unavailable

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """BatchingParameters with TF Serving's defaults for the fields a file leaves out."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    thread_pool_name: str = "batch_threads"
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_message(cls, message):
        """Return the options a BatchingParameters message sets, refusing invalid ones."""
        values = {}
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                     "num_batch_threads", "thread_pool_name"):
            if message.HasField(name):
                values[name] = getattr(message, name).value
        values["allowed_batch_sizes"] = tuple(message.allowed_batch_sizes)
        values["pad_variable_length_inputs"] = message.pad_variable_length_inputs
        options = cls(**values)
        options.validate()
        return options

    @classmethod
    def read(cls, path):
        message = protos.read_batching_parameters(path) if path else \
            protos.new_batching_parameters()
        return cls.from_message(message)

    def validate(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be positive; was {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise InvalidArgument("batch_timeout_micros must be non-negative")
        sizes = self.allowed_batch_sizes
        if sizes:
            if list(sizes) != sorted(set(sizes)) or sizes[0] <= 0:
                raise InvalidArgument("allowed_batch_sizes entries must be positive and "
                                      "monotonically increasing")
            if sizes[-1] != self.max_batch_size:
                raise InvalidArgument("Last entry in allowed_batch_sizes must match "
                                      "max_batch_size; last entry was "
                                      f"{sizes[-1]}; expected {self.max_batch_size}")


class _Task:
    """One caller's rows, waiting for its slice of a batch's outputs."""

    def __init__(self, inputs, size):
        self.inputs, self.size = inputs, size
        self.enqueued = time.monotonic()
        self.done = False  # set by the caller that ran its batch, under the batcher's lock
        self.outputs = None
        self.error = None


class _Batch:
    def __init__(self, deadline, signature_key):
        self.signature_key = signature_key
        self.tasks = []
        self.size = 0
        self.deadline = deadline


def task_size(inputs):
    """Return the rows of a call, refusing inputs a batching session cannot split."""
    sizes = set()
    for name, array in inputs.items():
        if array.ndim == 0:
            raise InvalidArgument("Batching session Run() input tensors must have at least "
                                  f"one dimension; input '{name}' is a scalar")
        sizes.add(array.shape[0])
    if len(sizes) != 1:
        raise InvalidArgument("Batching session Run() input tensors must have equal "
                              "0th-dimension size")
    return sizes.pop()


def _check_outputs(outputs, rows):
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != rows:
            raise InvalidArgument(f"Batched output tensor '{name}' has 0th dimension "
                                  f"{array.shape[0] if array.ndim else 'none'}; "
                                  f"expected {rows}")


class Batcher:
    """The batch scheduler of one servable: queues per signature and a pool of workers."""

    def __init__(self, servable, options, metrics=None, timeout_seconds=30.0):
        self._servable = servable
        self._options = options
        self._metrics = metrics
        self._timeout = timeout_seconds
        self._cond = threading.Condition()
        self._queues = collections.OrderedDict()  # key -> deque of _Batch
        self._closed = False
        self._running = 0  # batches being run now by callers, at most num_batch_threads

    def run(self, signature_key, inputs):
        """Return this call's outputs after it ran as part of a batch."""
        size = task_size(inputs)
        if size > self._options.max_batch_size:
            raise InvalidArgument(f"Task size {size} is larger than maximum input batch size "
                                  f"{self._options.max_batch_size}")
        options = self._options
        with self._cond:
            closed = self._closed
            # Nothing queued, a batch thread free and no timeout to wait out: the batch would
            # be this call alone, run at once, so run it as it is (no merge, no split).
            alone = (not closed and not options.batch_timeout_micros
                     and self._running < options.num_batch_threads
                     and not any(self._queues.values()) and self._padded_size(size) == size)
            if alone:
                self._running += 1
        if closed:  # a call that resolved this version just before its unload
            return self._servable.run(signature_key, inputs)
        if alone:
            try:
                return self._run_alone(signature_key, inputs, size)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
        key = (signature_key,) + tuple(sorted(
            (name, array.dtype.str, array.shape[1:]) for name, array in inputs.items()))
        task = _Task(inputs, size)
        with self._cond:
            self._enqueue(key, task)
        self._work_until_done(task, time.monotonic() + self._timeout)
        if self._metrics:
            self._metrics.record_wrapped_run()
        if task.error is not None:
            raise task.error
        return task.outputs

    def _run_alone(self, signature_key, inputs, size):
        """Run a batch of this one call (the batch _run_batch would build, without copies)."""
        if self._metrics:
            self._metrics.record_queuing(self._options.thread_pool_name, 0.0)
        try:
            outputs = self._servable.run(signature_key, inputs)
            _check_outputs(outputs, size)
            return outputs
        finally:  # counted whatever the batch's outcome, as batched calls are
            if self._metrics:
                self._metrics.record_wrapped_run()

    def _enqueue(self, key, task):
        batches = self._queues.setdefault(key, collections.deque())
        last = batches[-1] if batches else None
        if last is None or last.size + task.size > self._options.max_batch_size:
            if len(batches) >= self._options.max_enqueued_batches:
                raise Unavailable("The batch scheduling queue to which this task was "
                                  "submitted is full")
            last = _Batch(time.monotonic() + self._options.batch_timeout_micros / 1e6, key[0])
            batches.append(last)
        last.tasks.append(task)
        last.size += task.size

    def _ready_batch(self):
        """Pop and return the first batch that may run now, else (None, seconds to wait)."""
        now = time.monotonic()
        wait = None
        for key, batches in list(self._queues.items()):
            if not batches:
                del self._queues[key]
                continue
            first = batches[0]
            full = first.size >= self._options.max_batch_size or len(batches) > 1
            if full or now >= first.deadline:
                batches.popleft()
                self._queues.move_to_end(key)  # round-robin across queues
                return first, None
            remaining = first.deadline - now
            wait = remaining if wait is None else min(wait, remaining)
        return None, wait

    def _work_until_done(self, task, deadline):
        """Run ready batches (this caller's or others') while a batch thread is free, else
        wait, until `task` is done; DEADLINE_EXCEEDED after `deadline`."""
        with self._cond:
            while not task.done:
                batch, wait = (self._ready_batch()
                               if self._running < self._options.num_batch_threads
                               else (None, None))
                if batch is not None:
                    self._running += 1
                    self._cond.release()
                    try:
                        self._process(batch)
                    finally:
                        self._cond.acquire()
                        self._running -= 1
                        for done in batch.tasks:
                            done.done = True
                        self._cond.notify_all()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded("Timed out waiting for the batch to run")
                self._cond.wait(remaining if wait is None else min(wait, remaining))

    def _process(self, batch):
        started = time.monotonic()
        if self._metrics:
            for task in batch.tasks:
                self._metrics.record_queuing(self._options.thread_pool_name,
                                             (started - task.enqueued) * 1e6)
        try:
            outputs = self._run_batch(batch)
            offset = 0
            for task in batch.tasks:
                task.outputs = {name: array[offset:offset + task.size]
                                for name, array in outputs.items()}
                offset += task.size
        except Exception as error:  # every caller of the batch gets the error
            for task in batch.tasks:
                task.error = error

    def _run_batch(self, batch):
        key_task = batch.tasks[0]
        names = list(key_task.inputs)
        merged = {name: np.concatenate([task.inputs[name] for task in batch.tasks])
                  for name in names}
        padded = self._padded_size(batch.size)
        if padded > batch.size:
            merged = {name: np.concatenate([array, np.repeat(array[:1], padded - batch.size,
                                                             axis=0)])
                      for name, array in merged.items()}
        outputs = self._servable.run(batch.signature_key, merged)
        _check_outputs(outputs, padded)
        return {name: array[:batch.size] for name, array in outputs.items()}

    def _padded_size(self, size):
        for allowed in self._options.allowed_batch_sizes:
            if allowed >= size:
                return allowed
        return size

    def close(self):
        """Take no more batches; the callers already queued still run theirs."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
