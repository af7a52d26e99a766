"""VESL inputs: folder, file list, tar shards (img2dataset layout), shard plans."""
import io
import json
import os.path as osp
import tarfile

import pytest

from cllip_mm.testing import make_vesl_images
from cllip_mm.vesl.sources import expand_braces, iter_shard, plan_shards, read_image


def write_tar(path, items):
    with tarfile.open(path, 'w') as tar:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_folder_shards_and_sidecar_captions(tmp_path):
    paths = make_vesl_images(str(tmp_path / 'a'), 3) + make_vesl_images(str(tmp_path / 'b'), 2)
    (tmp_path / 'a' / 'img_0001.txt').write_text('a red dog\n')
    shards = plan_shards(str(tmp_path), shard_size=2)
    assert [s.name for s in shards] == ['00000', '00001', '00002']
    assert [p for s in shards for p in s.paths] == sorted(paths)
    items = [it for s in shards for it in iter_shard(s)]
    assert [it.meta.get('caption') for it in items[:2]] == [None, 'a red dog']
    # same stem in two folders: keys stay unique within the shard
    assert items[3].key == 'img_0000' and items[4].key == 'img_0001'
    assert read_image(items[0].data).mode == 'RGB'
    # an output directory inside the input folder is not input
    inside = plan_shards(str(tmp_path), shard_size=2, exclude=str(tmp_path / 'b'))
    assert [p for s in inside for p in s.paths] == sorted(paths)[:3]


def test_file_list(tmp_path):
    paths = make_vesl_images(str(tmp_path / 'imgs'), 3)
    lst = tmp_path / 'list.txt'
    lst.write_text(f'# images\nimgs/img_0002.jpg\ta blue ball\n{paths[0]}\n\n')
    shards = plan_shards(str(lst), shard_size=10)
    items = list(iter_shard(shards[0]))
    assert [it.path for it in items] == [paths[2], paths[0]]
    assert items[0].meta['caption'] == 'a blue ball' and 'caption' not in items[1].meta
    bad = tmp_path / 'bad.txt'
    bad.write_text('imgs/img_0000.jpg\nnotes.doc\n')
    with pytest.raises(ValueError, match=r'bad.txt:2'):
        plan_shards(str(bad))


def test_tar_shards_img2dataset_layout(tmp_path):
    paths = make_vesl_images(str(tmp_path / 'imgs'), 3)
    data = [open(p, 'rb').read() for p in paths]
    for i in range(2):
        write_tar(str(tmp_path / f'{i:05d}.tar'), [
            (f'{i}000.jpg', data[i]), (f'{i}000.json', json.dumps(dict(
                caption=f'caption {i}', key=f'{i}000')).encode()),
            (f'{i}001.txt', b'only text'), (f'{i}001.png', data[2]),
            (f'{i}002.json', b'{}')])  # no image: not an item
    for source in (str(tmp_path / '{00000..00001}.tar'), str(tmp_path / '*.tar')):
        shards = plan_shards(source)
        assert [s.name for s in shards] == ['00000', '00001']
        items = list(iter_shard(shards[1]))
        assert [(it.key, it.ext) for it in items] == [('1000', '.jpg'), ('1001', '.png')]
        assert items[0].meta['caption'] == 'caption 1' and items[1].meta['caption'] == 'only text'
        assert items[0].data == data[1] and items[0].path is None
    (tmp_path / 'x.jpg').write_bytes(data[0])
    with pytest.raises(ValueError, match='both image files and .tar'):
        plan_shards(str(tmp_path))


def test_expand_braces_and_missing_input(tmp_path):
    assert expand_braces('s/{08..11}.tar') == ['s/08.tar', 's/09.tar', 's/10.tar', 's/11.tar']
    with pytest.raises(FileNotFoundError, match='no file matches'):
        plan_shards(str(tmp_path / '{0..3}.tar'))
    with pytest.raises(FileNotFoundError, match='no image files'):
        plan_shards(str(tmp_path))
    assert not osp.exists(tmp_path / 'x')
