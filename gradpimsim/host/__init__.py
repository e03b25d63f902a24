"""The host side of a training iteration.

``training``: a workload graph -> the task DAG of one iteration (forward, backward data and
weight gradients, optimizer updates) and the tensors it touches; ``npu``: an analytical
systolic-array NPU turning each task into compute cycles and DMA ``Transfer``s; ``allocator``:
physical placement of those tensors, with pluggable policies for optimizer groups.
"""
