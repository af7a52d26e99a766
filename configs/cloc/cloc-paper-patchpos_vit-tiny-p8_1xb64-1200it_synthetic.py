# [ours] ./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py with one change: the patch tokens get
# the sine encoding of their centres in the corner tokens' basis before the Prompter's layer
# (ClocPrompter.patch_pos_encoding), so a corner token and a patch meet in one coordinate
# system. docs/region_effect.md ("The paper's recipe on the demo") says why and what it gives.
_base_ = ['./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py']
model = dict(prompter=dict(patch_pos_encoding=True))
