"""Detection building blocks shared by the detectors, their data and their evaluation.

``boxes``: IoU, the R-CNN box encoding, NMS. ``anchors``: SSD default boxes and Faster R-CNN anchors.
Boxes are ``(x1, y1, x2, y2)`` corners in the last axis unless a function says otherwise.
"""
