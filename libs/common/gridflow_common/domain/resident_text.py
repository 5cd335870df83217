"""What residents type, brought to one spelling before it is classified (居民用语规范化).

Residents write on phones in whatever their input method gives them: full-width letters and
digits, traditional characters (繁体, from relatives' phones and Hong Kong or Taiwan keyboards),
homophone slips of pinyin input (拉圾 for 垃圾, 燥音 for 噪音), and the words of Wenzhou and the
wider Wu area (工钿 for 工资, 细儿 for 小孩). Classification sees one spelling of each.

Standard library only. The tables are ours, kept to the characters and words of this domain
(a general converter such as OpenCC is a C++ library with a dictionary far larger than the few
hundred characters a civic report uses; what matters here is that the words a category depends
on read the same however they were typed). A city adds its own words in ``synonyms.csv``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

# Traditional -> simplified, one character to one, for the characters of civic reports: the
# categories' words and what surrounds them. Aligned strings: the n-th of one becomes the n-th
# of the other.
_TRADITIONAL = (
    "燈電車亂違聲擾鄰樓蓋護樹擋陽攤擺賣經營雜廢築醫療針頭輸衛傳紛無溝飛線滅暫獨齡顧難過證飲資"
    "討兒氣聞壞個這裡裏們來說話沒麼問題處報幫還時間點馬邊門廳區園鎮單動發現見長鐵鋼戶漿髒輛擠"
    "佔販廣場樂響聽貓寵鬧裝鑽機廠業員費錢闆給幾為會應該對開關將從後歲媽爺漢樣嗎麵壓窪積爛斷葉"
    "臺檯噴湧滲濕燒煙嗆廚閥漲鐘層鎖衝負責竊撿購買貨鬥罵癱瘓藥診蟲糞屍龍頭階梯築違規們謝請讓"
    "別隻條塊綠環淨衛劃搶險災緊繫聯絡導護號碼嚴峻週週倉庫廁盜騙賭毒黃場歡認識"
)
_SIMPLIFIED = (
    "灯电车乱违声扰邻楼盖护树挡阳摊摆卖经营杂废筑医疗针头输卫传纷无沟飞线灭暂独龄顾难过证饮资"
    "讨儿气闻坏个这里里们来说话没么问题处报帮还时间点马边门厅区园镇单动发现见长铁钢户浆脏辆挤"
    "占贩广场乐响听猫宠闹装钻机厂业员费钱板给几为会应该对开关将从后岁妈爷汉样吗面压洼积烂断叶"
    "台台喷涌渗湿烧烟呛厨阀涨钟层锁冲负责窃捡购买货斗骂瘫痪药诊虫粪尸龙头阶梯筑违规们谢请让"
    "别只条块绿环净卫划抢险灾紧系联络导护号码严峻周周仓库厕盗骗赌毒黄场欢认识"
)
assert len(_TRADITIONAL) == len(_SIMPLIFIED)
TRADITIONAL_TO_SIMPLIFIED = str.maketrans(_TRADITIONAL, _SIMPLIFIED)

# Slips of pinyin input (the homophone the input method offered first), and everyday words
# for a category's word. Applied after the character table, longest first.
DEFAULT_VARIANTS: Mapping[str, str] = {
    # homophones and near-homophones typed by mistake (错别字)
    "拉圾": "垃圾",
    "垃级": "垃圾",
    "垃极": "垃圾",
    "拉级": "垃圾",
    "燥音": "噪音",
    "躁音": "噪音",
    "操音": "噪音",
    "路登": "路灯",
    "路等": "路灯",
    "井盍": "井盖",
    "井概": "井盖",
    "摆滩": "摆摊",
    "滩贩": "摊贩",
    "违张": "违章",
    "违障": "违章",
    "煤汽": "煤气",
    "然气": "燃气",
    "天燃气": "天然气",
    "低包": "低保",
    "消访": "消防",
    "树技": "树枝",
    "坑凹": "坑洼",
    "欠心": "欠薪",
    "拖久": "拖欠",
    "拖钱": "拖欠",
    "医料": "医疗",
    "针筒": "针头",
    "漏谁": "漏水",
    "噪绳": "噪声",
    "瓦斯": "燃气",
    "群住": "群租",
    # everyday words for the category's own word
    "电瓶车": "电动车",
    "电驴": "电动车",
    "小电驴": "电动车",
    "瓶车": "电动车",
    "液化气": "煤气",
    "煤气罐": "煤气瓶",
    "下水井": "窨井",
    "阴沟盖": "井盖",
    "井盖子": "井盖",
    "摊头": "摊位",
    "小摊": "摊位",
    "工钱": "工资",
    "薪水": "工资",
}

# A keyword followed by one of these names a place, not the problem: in 路灯下面有人摆摊 the
# streetlight is where the stall is (地标), so the keyword is left out of the features there.
LANDMARK_AFTER = (
    "下面",
    "底下",
    "下边",
    "旁边",
    "边上",
    "门口",
    "对面",
    "附近",
    "前面",
    "后面",
    "上面",
    "上头",
    "跟前",
    "周围",
    "一带",
    "边",
    "下",
)

# ... unless the place word is the start of another word: 井盖下陷, 井盖边缘碎了 speak of the
# manhole cover itself.
NOT_LANDMARK_AFTER = (
    "下陷",
    "下沉",
    "下去",
    "下来",
    "下午",
    "下雨",
    "下水",
    "下班",
    "边缘",
    "边角",
    "边框",
)

_NOT_WORD = re.compile(r"[^\w]+")


class Normaliser:
    """One spelling for what residents type: ``normalise(text)``. ``synonyms``: the city's own
    word -> standard word (``synonyms.csv``), over the defaults."""

    def __init__(self, synonyms: Mapping[str, str] | Iterable[tuple[str, str]] = ()):
        variants = dict(DEFAULT_VARIANTS)
        pairs = synonyms.items() if isinstance(synonyms, Mapping) else synonyms
        for word, standard in pairs:
            word, standard = _fold(word), _fold(standard)
            if word and word != standard:
                variants[word] = standard
        self.variants = variants
        # One pass, the longest word first: 天燃气 is replaced whole before 然气 could be.
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def normalise(self, text: str) -> str:
        folded = _fold(text)
        if self._pattern is not None:
            folded = self._pattern.sub(lambda m: self.variants[m.group(0)], folded)
        # Punctuation and spaces separate words; a run of word characters stays whole.
        return _NOT_WORD.sub(" ", folded).strip()

    def variants_in(self, text: str) -> list[str]:
        """``word→standard`` for each of the normaliser's words found in ``text`` (for the
        reasons a clerk reads)."""
        if self._pattern is None:
            return []
        folded = _fold(text)
        return sorted(
            {f"{m.group(0)}→{self.variants[m.group(0)]}" for m in self._pattern.finditer(folded)}
        )


def _fold(text: str) -> str:
    # NFKC folds full-width letters, digits and punctuation (Ｗｉｆｉ，１２３) to their usual
    # forms; casefold does the same for case; the table folds traditional characters.
    return unicodedata.normalize("NFKC", text).casefold().translate(TRADITIONAL_TO_SIMPLIFIED)
