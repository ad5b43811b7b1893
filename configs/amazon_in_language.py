"""In-language check for Webis-CLS-10: train on one language's labeled
reviews of a domain, select on 400 of them cut out (never trained on), score
on that language's test reviews: what the model reaches where the answer is
known, the bound the 3->1 transfer is compared with.

    man-tf-train --config=configs/amazon_in_language.py:jp --config.domain=dvd \
        --workdir=workdirs/in_dvd_jp
    man-tf-train --config=configs/amazon_in_language.py:de,words ...   # word vectors

The language (``jp`` by default; ``en``, ``de``, ``fr``) is the one labeled
source; the "target" ``<lang>_self`` is the same language's files under a
second name, because MAN-MoE needs a target distinct from its sources. Its
dev reviews are cut from the train file as in ``configs/amazon_cls.py``, and
the loader leaves them out of the source's labeled reviews
(``man_tf.data.loading.load_data``): 1,600 labeled reviews train. Everything
else is ``configs/amazon_cls.py``'s setting for the input after the comma
(``encoder``, the default, or ``words``).
"""

import os

from man_tf.config_files import in_language_config

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg="jp"):
    return in_language_config(os.path.join(HERE, "amazon_cls.py"), arg)
