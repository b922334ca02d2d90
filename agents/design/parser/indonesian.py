"""Indonesian synonyms ("beli PEPE 10% kalau turun 5% dalam 1 jam, stop loss 3%").

Indonesian crypto talk mixes in English freely ("stop loss", "tp", "cut loss", "candle"), which
the base vocabulary already reads. "ada" (there is) and "dia" (it) are only soft filler: ADA and
DIA are also token symbols.
"""

from __future__ import annotations

from agents.design.parser.lexicon import Lexicon, words

INDONESIAN = Lexicon(
    name="id",
    # -- orders and amounts --
    buy=r"beli|membeli|belikan|borong",
    sell=r"jual|menjual|jualkan|keluar|tutup(?:\s+posisi)?",
    amount_verbs=r"beli|membeli|belikan|pakai|gunakan|alokasikan|investasikan|belanjakan|dengan",
    with_words=r"dengan|pakai|sebesar",
    of_balance=r"dari\s+(?:total\s+)?(?:saldo|modal|dana)(?:\s+(?:saya|aku|ku|kamu|yang\s+ada))?",
    balance_nouns=r"(?:total\s+)?saldo(?:\s+(?:saya|aku|ku))?|modal(?:\s+saya)?",
    amount_words={"setengah": 50.0, "separuh": 50.0, "seperempat": 25.0, "sepertiga": 100 / 3,
                  "semua": 100.0, "semuanya": 100.0, "seluruh": 100.0},
    amount_fields=r"jumlah|ukuran(?:\s+posisi)?|besar\s+posisi|porsi",
    field_joiners=r"jadi|menjadi|sebesar|ke",
    currencies=r"dolar\b|rupiah\b|ribu\b|rb\b",
    token_leads=r"beli|membeli|jual|menjual|token|koin|harga|ganti\s+ke|tukar\s+ke",
    token_fillers=r"koin|token",
    when=r"kalau|kalo|jika|jikalau|ketika|saat|bila|apabila|begitu",
    # -- price moves ("penurunan"/"kenaikan" are nouns that take the percent directly) --
    drop_verbs=r"turun|menurun|anjlok|jatuh|merosot|ambruk|penurunan|koreksi",
    rise_verbs=r"naik|melonjak|meningkat|menguat|terbang|kenaikan",
    drop_nouns="",
    rise_nouns="",
    noun_joiners=r"sebesar",
    modifiers=r"sebesar|sebanyak|lebih\s+dari|minimal|setidaknya|sekitar|hingga|sampai",
    pct=r"persen\b|prosen\b",
    # -- volume --
    volume_nouns=r"lonjakan\s+volume|kenaikan\s+volume|volume\s+(?:transaksi|perdagangan)",
    volume_verbs=r"melonjak|naik|meningkat|meledak",
    times=r"kali(?:\s+lipat)?",
    multiple_words="",
    multiple_stems={},
    to_words=r"jadi|menjadi",
    above_average=r"di\s*atas|lebih\s+dari",
    averages=r"rata-rata|rata2|biasanya|biasa|normal",
    average_dets="",
    # -- price levels --
    level_verbs=r"naik|turun|jatuh|anjlok|tembus|menembus|berada|ditutup|bergerak",
    above=r"di\s*atas|ke\s+atas|melewati|menembus|tembus",
    below=r"di\s*bawah|ke\s+bawah",
    price_words=r"harga(?:nya)?",
    level_nouns=r"level|harga|angka",
    indicators="",
    # -- stop-loss and take-profit --
    stop_loss=r"batas\s+(?:rugi|kerugian)|cutloss",
    take_profit=r"ambil\s+(?:untung|profit|keuntungan)|target\s+(?:untung|profit)",
    risk_joiners=r"di|sebesar|pada|jadi|menjadi|ke",
    remove_verbs=r"tanpa|hapus|hilangkan|matikan|nonaktifkan|buang|batalkan",
    determiners="",
    exit_preps=r"saat|pada|di|ketika|kalau|jika|bila",
    profit_words=r"untung|cuan|profit",
    loss_words=r"rugi|loss",
    # -- timeframes --
    tf_prefixes=r"dalam|dlm|selama|tiap|setiap",
    tf_last="",
    tf_trailers=r"terakhir|grafik",
    units={"jam": 60, "menit": 1, "mnt": 1, "hari": 1440, "minggu": 10080},
    tf_words={"sejam": "1h", "per jam": "1h", "tiap jam": "1h", "setiap jam": "1h", "sehari": "1d",
              "harian": "1d", "per hari": "1d", "tiap hari": "1d", "setiap hari": "1d",
              "semenit": "_1m", "per menit": "_1m"},
    word_numbers={"satu": 1, "dua": 2, "empat": 4, "lima": 5, "lima belas": 15, "tiga puluh": 30,
                  "enam puluh": 60, "dua puluh empat": 24},
    # -- chains --
    chain_preps=r"di|pada|lewat|melalui",
    chain_nouns=r"jaringan",
    # -- structure --
    and_words=r"\b(?:dan|serta|dengan|disertai)\b",
    or_words=r"\batau\b",
    then_words=r"lalu|kemudian|setelah\s+itu",
    add_markers=r"juga|tambahkan|tambah",
    # -- leftovers --
    filler=words(
        """
kalau kalo jika jikalau ketika saat bila apabila begitu dan atau serta yang itu ini di ke dari untuk dengan
pada saya aku gue gw mau ingin tolong dong ya yah sih deh aja saja harga harganya koin lalu kemudian terus
juga sudah udah akan bisa setiap tiap semua semuanya nya kamu posisi beli membeli jual menjual sekarang
langsung otomatis strategi lipat kondisi aturan terjadi pakai gunakan ganti tukar ubah atur jadi menjadi
saja
"""
    ),
    soft_filler=words("ada dia"),
    non_token=words(
        """
saldo modal dana harga harganya semua semuanya setengah separuh seperempat sepertiga penurunan kenaikan
lonjakan jam menit hari minggu persen level rata
"""
    ),
    blocking=words("rugi untung cuan"),
    reset=r"mulai\s+(?:lagi\s+)?(?:ulang|dari\s+awal|dari\s+nol)|ulang\s+dari\s+awal|dari\s+nol|hapus\s+strategi",
)
