"""The host/PIM arbiter: one channel's host controller and PIM scheduler taking turns on one
device.  It sits above both (it imports the controller and the PIM scheduler; neither imports
it), so a new arbitration policy lands here and changes neither side."""
