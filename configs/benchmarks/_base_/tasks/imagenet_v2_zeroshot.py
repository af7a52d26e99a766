# Task 3 on ImageNetV2 (Recht et al. 2019), [paper] the paper's "ImageNet v2" zero-shot top-1;
# [paper?] the MatchedFrequency variant (the one CLIP and open_clip report; the spec does not
# name the variant). Same dataset class, classes, templates and preprocessing as
# imagenet_zeroshot. The published archive (imagenetv2-matched-frequency.tar.gz) holds
# imagenetv2-matched-frequency-format-val/<class index>/<hash>.jpeg with folders named
# 0..999: sorted as strings ('10' < '2') they are not the class order, so the images are
# read through a list file whose label is the folder's number, written once by
#   cd data/imagenetv2 && mkdir -p meta && (cd imagenetv2-matched-frequency-format-val && \
#     find . -name '*.jpeg' | sed 's|^\./||' | sort | awk -F/ '{print $0, $1}') > meta/val.txt
_base_ = ['./imagenet_zeroshot.py']
data_root = 'data/imagenetv2/'
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='meta/val.txt',
        data_prefix=dict(img='imagenetv2-matched-frequency-format-val/')))
