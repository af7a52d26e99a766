# Copyright (c) cllip_mm contributors. All rights reserved.
"""Runner-level hook tests reuse the toy task of tests/test_utils/toy_model_helpers.py."""
import os.path as osp
import sys

HELPERS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'test_utils')
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)
