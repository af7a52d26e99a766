# The paper's Table 2 ablation "RoI alignment instead of the Prompter" (rows 4, 9, 14) of
# ./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py: a box's region embedding is the mean of
# its RoIAlign grid on the ViT's patch tokens, through the Prompter's LayerNorm and
# projection; the grounding branch is unchanged.
_base_ = ['./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py']
model = dict(prompter=dict(type='ClocRoIPrompter', roi_output_size=4))
