# [ours] ./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py with two changes, each aimed at one
# cause found on the demo (docs/region_effect.md, "The paper's recipe on the demo"):
# - the Prompter's read-out covers the box, cell by cell: a 2 x 2 grid of cells, each the
#   average of the box's prompt tokens and the patches in the cell (ClocPrompter pool='box',
#   box_grid=2), normalised and concatenated before the projection; the layer, the corner
#   tokens and the single head are the paper's. An average over all tokens does not find
#   the box, and one average over the box loses the shape in it;
# - no text filtering (identical strings are still one text): phrases sharing a colour stay
#   above the 0.9 cosine in a text encoder trained from scratch, and the filter drops
#   exactly the negatives that would teach the shape word.
_base_ = ['./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py']
model = dict(prompter=dict(pool='box', box_grid=2), region_loss=dict(text_filter_threshold=None))
