# Task 4 on the Flickr30k 1k test split of Karpathy's dataset_flickr30k.json (images under
# data_root/flickr30k-images/, 5 captions each). [ours] Not a benchmark of the paper (it
# uses Flickr30k Entities only for phrase grounding inside its MLLM evaluation).
_base_ = ['./coco_retrieval.py']
data_root = 'data/flickr30k/'
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='dataset_flickr30k.json',
        data_prefix=dict(img='flickr30k-images/')))
