"""Name, city, store and manager pools for the synthetic store, in Chinese and English.

Pools are plain tuples; :func:`name_pools` bundles the ones of a locale. Weights
are rough shares (surname frequencies, city sizes), not census figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_ml.errors import ConfigError

LOCALES = ("zh_CN", "en")


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


# --------------------------------------------------------------------------- zh_CN

_ZH_SURNAMES = _words(
    "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 "
    "谢 宋 唐 许 韩 冯 邓 曹 彭 曾 肖 田 董 袁 潘 于 蒋 蔡 余 杜 叶 程 "
    "苏 魏 吕 丁 任 沈 姚 卢 姜 崔 钟 谭 陆 汪 范 金 石 廖 贾 夏 韦 付 "
    "方 白 邹 孟 熊 秦 邱 江 尹 薛 闫 段 雷 侯 龙 史 陶 黎 贺 顾 毛 郝 "
    "龚 邵 万 钱 严 覃 武 戴 莫 孔 向 汤"
)
_ZH_FEMALE_CHARS = _words(
    "芳 娜 敏 静 丽 艳 婷 雪 慧 琳 颖 倩 洁 玲 萍 红 燕 霞 欣 怡 佳 悦 "
    "雨 梦 晨 璐 瑶 琪 思 雅 涵 诗 婧 月 秀 兰 凤 洋 丹 蕾 露 晶 莉 薇 "
    "可 馨 妍 彤 嘉 宁"
)
_ZH_MALE_CHARS = _words(
    "伟 强 磊 军 勇 杰 涛 明 超 刚 平 辉 鹏 华 飞 鑫 波 斌 宇 浩 凯 健 "
    "俊 帆 帅 旭 宁 龙 林 峰 洋 博 文 睿 轩 毅 亮 志 刚 建 国 东 海 昊 "
    "然 晨 阳 成 轩 泽"
)
#: Simplified → traditional characters, to spell a duplicate record's name differently.
ZH_TRADITIONAL = str.maketrans(
    "张刘陈杨黄赵吴孙马郑谢许韩冯邓肖蒋叶苏吕卢钟谭陆贾韦邹龙顾龚钱伟强军杰涛刚辉鹏华飞"
    "帅宁丽艳颖洁红梦瑶诗兰凤丹蕾露晶馨妍国东阳泽龙",
    "張劉陳楊黃趙吳孫馬鄭謝許韓馮鄧蕭蔣葉蘇呂盧鍾譚陸賈韋鄒龍顧龔錢偉強軍傑濤剛輝鵬華飛"
    "帥寧麗艷穎潔紅夢瑤詩蘭鳳丹蕾露晶馨妍國東陽澤龍",
)
#: (city, city tier, relative size): tier 1 一线, 2 新一线, 3 二线, 4 三线, 5 四线及以下.
_ZH_CITIES = (
    ("上海", 1, 10),
    ("北京", 1, 10),
    ("广州", 1, 7),
    ("深圳", 1, 7),
    ("成都", 2, 6),
    ("重庆", 2, 6),
    ("杭州", 2, 5),
    ("武汉", 2, 5),
    ("西安", 2, 4),
    ("苏州", 2, 4),
    ("南京", 2, 4),
    ("天津", 2, 4),
    ("长沙", 2, 4),
    ("郑州", 2, 4),
    ("东莞", 2, 3),
    ("青岛", 2, 3),
    ("沈阳", 2, 3),
    ("宁波", 2, 3),
    ("昆明", 2, 3),
    ("合肥", 3, 3),
    ("佛山", 3, 3),
    ("福州", 3, 2),
    ("无锡", 3, 2),
    ("厦门", 3, 2),
    ("济南", 3, 2),
    ("大连", 3, 2),
    ("温州", 3, 2),
    ("南宁", 3, 2),
    ("长春", 3, 2),
    ("哈尔滨", 3, 2),
    ("石家庄", 3, 2),
    ("南昌", 3, 2),
    ("贵阳", 3, 2),
    ("泉州", 3, 2),
    ("常州", 3, 1),
    ("南通", 3, 1),
    ("徐州", 3, 1),
    ("嘉兴", 3, 1),
    ("太原", 3, 1),
    ("惠州", 4, 1),
    ("珠海", 4, 1),
    ("中山", 4, 1),
    ("台州", 4, 1),
    ("烟台", 4, 1),
    ("兰州", 4, 1),
    ("绍兴", 4, 1),
    ("洛阳", 4, 1),
    ("扬州", 4, 1),
    ("芜湖", 4, 1),
    ("赣州", 5, 1),
    ("桂林", 5, 1),
    ("宜昌", 5, 1),
    ("九江", 5, 1),
    ("大理", 5, 1),
)
_ZH_MALLS = [
    "万达广场店",
    "万象城店",
    "大悦城店",
    "吾悦广场店",
    "龙湖天街店",
    "印象城店",
    "银泰城店",
    "凯德广场店",
]
_ZH_EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "gmail.com")
_ZH_PHONE_PREFIXES = _words(
    "130 131 132 133 135 136 137 138 139 150 151 "
    "152 155 156 157 158 159 166 176 177 180 181 "
    "182 183 185 186 187 188 189 199"
)

# --------------------------------------------------------------------------- en

_EN_LAST = _words(
    "Smith Jones Taylor Brown Williams Wilson "
    "Johnson Davies Robinson Wright Thompson "
    "Evans Walker White Roberts Green Hall Wood "
    "Jackson Clarke Patel Khan Lewis James "
    "Phillips Mason Mitchell Rose Davis Rodriguez "
    "Cox Alexander Morgan Moore Martin Price "
    "Hughes Turner Hill Cooper Ward Harris King "
    "Baker Edwards Allen Young Scott Carter "
    "Murphy Bell Ahmed Kelly Anderson Campbell "
    "Shaw Chapman Singh Ali Collins Lee Morris "
    "Watson Chen Wang Nguyen Lopez"
)
_EN_FEMALE = _words(
    "Olivia Amelia Isla Ava Mia Ivy Lily Isabella "
    "Rosie Sophia Grace Freya Emily Poppy Ella "
    "Evie Charlotte Sophie Alice Chloe Jessica "
    "Hannah Emma Lucy Sarah Laura Rachel Rebecca "
    "Katie Megan Amy Zoe Holly Ruby Daisy"
)
_EN_MALE = _words(
    "Oliver George Noah Arthur Harry Leo Muhammad "
    "Jack Charlie Oscar Jacob Henry Thomas "
    "Freddie Alfie Theo William James Samuel "
    "Joshua Daniel Matthew David Benjamin Luke "
    "Adam Ryan Callum Jamie Ben Liam Ethan Max "
    "Lewis Joseph"
)
#: Nicknames and misspellings, to spell a duplicate record's first name differently.
EN_VARIANTS = {
    "Jonathan": "Jon",
    "Matthew": "Matt",
    "Daniel": "Dan",
    "Benjamin": "Ben",
    "Samuel": "Sam",
    "Joshua": "Josh",
    "William": "Will",
    "Thomas": "Tom",
    "James": "Jim",
    "Joseph": "Joe",
    "Rebecca": "Becky",
    "Katie": "Katy",
    "Sophie": "Sofie",
    "Isabella": "Isabelle",
    "Olivia": "Liv",
    "Charlotte": "Lottie",
    "Jessica": "Jess",
    "Sarah": "Sara",
}
_EN_CITIES = (
    ("London", 1, 20),
    ("Birmingham", 2, 5),
    ("Manchester", 2, 5),
    ("Leeds", 2, 4),
    ("Glasgow", 2, 4),
    ("Liverpool", 2, 3),
    ("Bristol", 2, 3),
    ("Edinburgh", 2, 3),
    ("Sheffield", 3, 3),
    ("Newcastle", 3, 2),
    ("Nottingham", 3, 2),
    ("Cardiff", 3, 2),
    ("Leicester", 3, 2),
    ("Brighton", 3, 2),
    ("Southampton", 3, 2),
    ("Belfast", 3, 2),
    ("Oxford", 4, 1),
    ("Cambridge", 4, 1),
    ("York", 4, 1),
    ("Bath", 4, 1),
    ("Exeter", 4, 1),
    ("Norwich", 4, 1),
    ("Chester", 4, 1),
    ("Inverness", 5, 1),
)
_EN_MALLS = _words(
    "High Street|Retail Park|Shopping Centre|Station|Old Town|Riverside|Westfield|Arcade",
    sep="|",
)
_EN_EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.co.uk", "hotmail.co.uk", "icloud.com")


@dataclass(frozen=True)
class NamePools:
    """The text pools of one locale.

    Attributes
    ----------
    locale : str
        ``zh_CN`` or ``en``.
    surnames, female_given, male_given : tuple of str
        Family names and given-name parts (single characters in Chinese).
    cities : tuple of (str, int, float)
        City name, city tier (1–5) and relative population.
    malls : tuple of str
        Suffixes that make store names (``上海`` + ``万象城店``).
    email_domains, phone_prefixes : tuple of str
        Parts of generated contact details.
    """

    locale: str
    surnames: tuple[str, ...]
    female_given: tuple[str, ...]
    male_given: tuple[str, ...]
    cities: tuple[tuple[str, int, float], ...]
    malls: tuple[str, ...]
    email_domains: tuple[str, ...]
    phone_prefixes: tuple[str, ...]

    @property
    def chinese(self) -> bool:
        """Whether names are Chinese (surname first, no space)."""
        return self.locale == "zh_CN"

    def manager_name(self, surname: str, given: str) -> str:
        """Name of an account manager as customers see it (``王经理`` or ``Sarah Hughes``)."""
        return f"{surname}经理" if self.chinese else f"{given} {surname}"


def name_pools(locale: str) -> NamePools:
    """Return the pools of ``locale``.

    Raises
    ------
    ConfigError
        If the locale is not ``zh_CN`` or ``en``.
    """
    if locale == "zh_CN":
        return NamePools(
            locale,
            tuple(_ZH_SURNAMES),
            tuple(_ZH_FEMALE_CHARS),
            tuple(_ZH_MALE_CHARS),
            tuple((c, t, float(w)) for c, t, w in _ZH_CITIES),
            tuple(_ZH_MALLS),
            _ZH_EMAIL_DOMAINS,
            tuple(_ZH_PHONE_PREFIXES),
        )
    if locale == "en":
        return NamePools(
            locale,
            tuple(_EN_LAST),
            tuple(_EN_FEMALE),
            tuple(_EN_MALE),
            tuple((c, t, float(w)) for c, t, w in _EN_CITIES),
            tuple(_EN_MALLS),
            _EN_EMAIL_DOMAINS,
            ("+447",),
        )
    raise ConfigError(f"Unknown locale {locale!r}; expected one of {', '.join(LOCALES)}.")
