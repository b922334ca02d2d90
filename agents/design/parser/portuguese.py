"""Portuguese synonyms ("comprar SOL quando cair 4% em 4 horas, stop de 3%").

Verbs come in the forms people write (infinitive, imperative, present, future subjunctive:
"cair"/"cai"/"caiu"/"quando cair"). "uma" is only soft filler: UMA is also a token symbol. The
short words ("e", "em", "se", "de", "na") sit only in whole-word slots. "no" (in the) is left out
everywhere: it is an English word ("no stop loss"), so "no ethereum" is not read as a chain.
"""

from __future__ import annotations

from agents.design.parser.lexicon import Lexicon, words

_POSITION = r"posi[çc][ãa]o"

PORTUGUESE = Lexicon(
    name="pt",
    # -- orders and amounts --
    buy=r"comprar|compre|compra|comprando|compro|comprem",
    sell=rf"vender|venda|vende|vendo|vendam|sair|saia|fechar(?:\s+a\s+{_POSITION})?|feche(?:\s+a\s+{_POSITION})?",
    amount_verbs=r"comprar|compre|compra|usar|use|usando|investir|invista|gastar|gaste|alocar|aloque|apostar|"
    r"aposte|arriscar|arrisque|com",
    with_words=r"com",
    of_balance=r"d[oa]s?\s+(?:meu\s+|minha\s+|nosso\s+)?(?:saldo|capital|banca|carteira|conta|patrim[ôo]nio)"
    r"(?:\s+(?:total|dispon[íi]vel))?",
    balance_nouns="",
    amount_words={"metade": 50.0, "um quarto": 25.0, "um terço": 100 / 3, "um terco": 100 / 3, "tudo": 100.0,
                  "todo o saldo": 100.0},
    amount_fields=rf"valor|quantia|quantidade|tamanho(?:\s+da\s+(?:{_POSITION}|ordem))?",
    field_joiners=r"de|para|é",
    currencies=r"d[óo]lar(?:es)?\b|reais\b|real\b",
    token_leads=r"comprar|compre|compra|vender|venda|vende|moeda|token|trocar\s+para|troque\s+para|mudar\s+para|"
    r"mude\s+para|pre[çc]o\s+d[oa]",
    token_fillers=r"de|do|da|moeda|token|um\s+pouco\s+de",
    when=r"quando|se|caso|assim\s+que",
    # -- price moves --
    drop_verbs=r"cair|cai|caiu|caia|cairem|despencar|despenca|despencou|desabar|desaba|desabou|recuar|recua|recuou",
    rise_verbs=r"subir|sobe|subiu|suba|subirem|disparar|dispara|disparou|valorizar|valoriza|valorizou",
    drop_nouns=r"queda|corre[çc][ãa]o",
    rise_nouns=r"alta|subida|valoriza[çc][ãa]o",
    noun_joiners=r"de",
    modifiers=r"mais\s+de|pelo\s+menos|no\s+m[íi]nimo|cerca\s+de|uns|até|de",
    pct=r"por\s+cento\b|porcento\b",
    # -- volume --
    volume_nouns=r"pico\s+de\s+volume|aumento\s+de\s+volume|explos[ãa]o\s+de\s+volume|volume\s+de\s+negocia[çc][ãa]o",
    volume_verbs=r"dispara|disparar|disparou|sobe|subir|subiu|aumenta|aumentar|aumentou|explode|explodir|explodiu|"
    r"cresce|crescer|cresceu|fica|ficar|estiver|for",
    times=r"vezes",
    # Longer forms first: nothing after the word marks its end ("dobrar" is not "dobra" + "r").
    multiple_words=r"dobrar|dobrou|dobra|duplicar|duplicou|duplica|triplicar|triplicou|triplica",
    multiple_stems={"dobr": 2, "duplic": 2, "tripl": 3},
    to_words=r"para",
    above_average=r"acima\s+d[ao]|mais\s+(?:do\s+)?que",
    averages=r"m[ée]dia|normal|usual|habitual",
    average_dets=r"a|da|do|o",
    # -- price levels --
    level_verbs=r"cair|cai|caiu|caia|subir|sobe|subiu|suba|ficar|fica|ficou|estiver|estar|est[áa]|passar|passa|"
    r"passou|romper|rompe|rompeu|fechar|fecha|fechou",
    above=r"acima\s+d[eoa]s?|acima|passar\s+de|passa\s+de|passou\s+de|ultrapassar|ultrapassa|ultrapassou",
    below=r"abaixo\s+d[eoa]s?|abaixo",
    price_words=r"(?:o\s+)?pre[çc]o",
    level_nouns=r"(?:o\s+)?n[íi]vel(?:\s+de)?|(?:o\s+)?pre[çc]o(?:\s+de)?",
    indicators=r"ifr|m[ée]dia\s+m[óo]vel",
    # -- stop-loss and take-profit --
    stop_loss=r"parar\s+(?:a\s+)?perda|stop\s+de\s+perda|limite\s+de\s+perda",
    take_profit=r"realizar\s+(?:o\s+)?lucro|alvo|objetivo|meta\s+de\s+lucro|lucro\s+alvo",
    risk_joiners=r"de|em|para",
    remove_verbs=r"sem|remover|remova|tirar|tire|desativar|desative|cancelar|cancele|excluir|exclua|apagar|apague",
    determiners=r"o|os|meu|o\s+meu",
    exit_preps=r"com|em|na|ao|ap[óo]s",
    profit_words=r"lucro|ganho",
    loss_words=r"preju[íi]zo|perda",
    # -- timeframes --
    tf_prefixes=r"em|dentro\s+de|durante|nas?|nos|por|a\s+cada|cada|(?:no\s+)?gr[áa]fico\s+de",
    tf_last=r"[úu]ltim[oa]s?|pr[óo]xim[oa]s?",
    tf_trailers=r"velas?",
    units={"hora": 60, "horas": 60, "minuto": 1, "minutos": 1, "dia": 1440, "dias": 1440, "semana": 10080,
           "semanas": 10080},
    tf_words={"por hora": "1h", "a cada hora": "1h", "cada hora": "1h", "última hora": "1h", "ultima hora": "1h",
              "por dia": "1d", "diário": "1d", "diario": "1d", "diária": "1d", "diaria": "1d", "diariamente": "1d",
              "por minuto": "_1m"},
    word_numbers={"um": 1, "uma": 1, "dois": 2, "duas": 2, "quatro": 4, "cinco": 5, "quinze": 15, "trinta": 30,
                  "sessenta": 60, "vinte e quatro": 24},
    # -- chains --
    chain_preps=r"na|em|pela|pelo",
    chain_nouns=r"rede",
    # -- structure ("e" is "and" only as a word of its own: not the "e" of "e.g." or "i.e.") --
    and_words=r"(?<![\w.])e(?![\w.])|\bcom\b",
    or_words=r"\bou\b",
    then_words=r"ent[ãa]o|depois",
    add_markers=r"tamb[ée]m|adicione|adicionar|al[ée]m\s+disso",
    # -- leftovers --
    filler=words(
        """
quando se caso ou o a os as um de do da dos das em na nos nas por para com que eu meu minha quero queria
gostaria favor obrigado você voce preço preco moeda comprar compre compra comprando vender venda vende vendo
ao à às pelo pela isso isto aqui agora sempre cada todo toda tudo assim então entao depois também tambem
automaticamente estratégia estrategia posição posicao condição condicao regra vez tiver houver há tem
usar usando trocar troque mudar mude alterar altere definir defina colocar coloque
"""
    ),
    soft_filler=words("uma"),
    non_token=words(
        """
saldo banca carteira capital preço preco tudo metade queda alta subida volume hora horas minuto minutos dias
semana nível nivel média media lucro perda
"""
    ),
    blocking=words("lucro perda prejuízo prejuizo alavancagem móvel movel parcial ifr"),
    reset=r"come[çc]ar\s+de\s+novo|recome[çc]ar|do\s+zero|resetar|zerar|apagar\s+a\s+estrat[ée]gia",
)
