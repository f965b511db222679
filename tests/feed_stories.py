"""Twenty news stories on one developing event (a dock strike in the port of Rotterdam), as one
site's feed would carry them over two weeks, and a new story on the same event; written for the
feed tests (the people are invented)."""

from __future__ import annotations

STRIKE_STORIES: list[tuple[str, list[str]]] = [
    ("Rotterdam dockers walk out over automation plans", [
        "ROTTERDAM — Thousands of dock workers in the port of Rotterdam walked off the job on Monday, "
        "halting container terminals at the Maasvlakte after talks on automation and job guarantees broke down.",
        "The union FNV Havens said the strike would last until terminal operators agreed to protect jobs as "
        "automated cranes and driverless vehicles are introduced. Union spokesman Marco Visser said the "
        "employers had refused to put job guarantees in writing.",
        "The Port of Rotterdam Authority said container traffic at the largest port in Europe had come to a "
        "standstill. Ingrid Dekker, its chief executive, urged both sides to return to the negotiating table.",
    ]),
    ("Container ships queue off Rotterdam as strike enters second day", [
        "ROTTERDAM — More than forty container ships were waiting at anchor in the North Sea on Tuesday as "
        "the dock strike in the port of Rotterdam entered its second day.",
        "Terminal operators ECT and APM Terminals said no containers had been loaded or unloaded since Monday "
        "morning. Maersk and Hapag-Lloyd told customers to expect delays of at least a week.",
        "Marco Visser of FNV Havens said dock workers would not return until the employers gave written "
        "guarantees that automation at the Maasvlakte terminals would not cost jobs.",
    ]),
    ("Maersk diverts ships to Antwerp as Rotterdam strike drags on", [
        "COPENHAGEN — Maersk said on Wednesday it would divert several container ships bound for Rotterdam "
        "to Antwerp and Hamburg while the dock strike in the Dutch port continues.",
        "The Danish shipping group said the strike in the port of Rotterdam had disrupted its services "
        "between Asia and northern Europe. Hapag-Lloyd and MSC were considering similar moves.",
        "Port officials in Antwerp warned that their terminals were already busy and could not absorb all "
        "the cargo meant for Rotterdam. FNV Havens said the diversions showed how much Europe relied on its dock workers.",
    ]),
    ("Dutch economy minister calls Rotterdam port strike talks", [
        "THE HAGUE — Economy Minister Hanneke Vos on Wednesday invited the union FNV Havens and the terminal "
        "operators of the port of Rotterdam to talks at her ministry to end the dock strike.",
        "Vos said the strike was costing the Dutch economy tens of millions of euros a day and that the "
        "government would not take sides in the dispute over automation.",
        "Marco Visser, the union spokesman, welcomed the invitation but said dock workers would stay on "
        "strike until job guarantees were agreed. Ingrid Dekker of the Port of Rotterdam Authority said she would attend.",
    ]),
    ("What the Rotterdam dock workers want", [
        "ROTTERDAM — The dock strike that has shut the port of Rotterdam is about automation. Terminal "
        "operators at the Maasvlakte plan to add automated cranes and driverless vehicles over five years.",
        "FNV Havens wants a written guarantee that no dock worker will be laid off because of automation, "
        "retraining for those whose jobs change, and a say in how new machines are introduced.",
        "The operators, ECT and APM Terminals, say automation is needed to compete with Antwerp and Hamburg. "
        "Marco Visser, the union spokesman, says the port's profits can pay for job guarantees.",
    ]),
    ("Supermarkets warn of empty shelves if Rotterdam strike continues", [
        "AMSTERDAM — Dutch supermarkets warned on Thursday that shelves could empty of imported fruit and "
        "household goods if the dock strike in the port of Rotterdam lasts another week.",
        "Albert Heijn and Jumbo said containers of bananas, coffee and electronics were stuck on ships "
        "waiting off Rotterdam. Retailers in Germany and Belgium also depend on goods shipped through the port.",
        "Economy Minister Hanneke Vos said the government was monitoring supplies. FNV Havens said dock "
        "workers regretted the disruption but blamed the terminal operators for refusing job guarantees.",
    ]),
    ("Rotterdam strike talks end without deal", [
        "THE HAGUE — Talks between FNV Havens and the terminal operators of the port of Rotterdam ended "
        "late on Thursday without a deal, and the dock strike will continue, both sides said.",
        "Economy Minister Hanneke Vos, who hosted the talks, said progress had been made on retraining but "
        "not on job guarantees. Marco Visser of the union said the operators still refused to put guarantees in writing.",
        "ECT and APM Terminals said their offer of no layoffs for three years was generous. Ingrid Dekker of "
        "the Port of Rotterdam Authority said every day of strike damaged the port's reputation.",
    ]),
    ("Antwerp terminals strain under cargo diverted from Rotterdam", [
        "ANTWERP — Container terminals in the port of Antwerp were running near capacity on Friday as "
        "shipping lines diverted cargo from Rotterdam, where dock workers have been on strike since Monday.",
        "Maersk, MSC and Hapag-Lloyd have sent ships to Antwerp and Hamburg instead of Rotterdam. Belgian "
        "port officials said yards were filling up and trucks faced waits of several hours.",
        "The strike by FNV Havens over automation at the Maasvlakte terminals has shut the largest port in "
        "Europe. Antwerp dock unions said they would not handle cargo meant to break the Rotterdam strike.",
    ]),
    ("Flower exporters count losses as Rotterdam port stays shut", [
        "AALSMEER — Dutch flower and vegetable exporters said on Friday they were losing millions of euros "
        "as the dock strike in the port of Rotterdam kept refrigerated containers from leaving.",
        "Growers who ship to Asia and the Americas through Rotterdam said cut flowers and peppers were "
        "spoiling. Some were sending goods by air or through Antwerp at far higher cost.",
        "Economy Minister Hanneke Vos said she would meet exporters next week. FNV Havens and the terminal "
        "operators ECT and APM Terminals remained far apart on job guarantees for dock workers.",
    ]),
    ("Court refuses to halt Rotterdam dock strike", [
        "ROTTERDAM — A court in Rotterdam on Saturday refused a request by the terminal operators ECT and "
        "APM Terminals to order an end to the dock strike, ruling that the action was lawful.",
        "The operators had argued that the strike by FNV Havens caused disproportionate damage to the Dutch "
        "economy. The judge said the right to strike weighed more heavily while talks had not been exhausted.",
        "Marco Visser, the union spokesman, called the ruling a victory for dock workers. Ingrid Dekker of the "
        "Port of Rotterdam Authority said she hoped the ruling would push both sides back to talks.",
    ]),
    ("Lashing crews join Rotterdam port strike", [
        "ROTTERDAM — Lashing crews who secure containers on ships joined the dock strike in the port of "
        "Rotterdam on Sunday, widening the action that has shut the Maasvlakte terminals for a week.",
        "FNV Havens said the lashers shared the dock workers' fears about automation. The terminal "
        "operators ECT and APM Terminals said the widening strike would make a settlement harder.",
        "Maersk said it had diverted eleven ships from Rotterdam so far. Economy Minister Hanneke Vos said "
        "she would appoint a mediator if there was no progress within days.",
    ]),
    ("Rotterdam strike pushes up freight rates from Asia", [
        "LONDON — Freight rates for shipping containers from Asia to northern Europe rose for a second week "
        "as the dock strike in the port of Rotterdam disrupted services, brokers said on Monday.",
        "Maersk and Hapag-Lloyd added congestion charges for cargo bound for Rotterdam, Antwerp and Hamburg. "
        "Analysts said the strike over automation had removed a large share of capacity in the North Sea.",
        "The union FNV Havens and the Maasvlakte terminal operators have not met since talks hosted by "
        "Economy Minister Hanneke Vos failed last week.",
    ]),
    ("Mediator appointed in Rotterdam port dispute", [
        "THE HAGUE — Economy Minister Hanneke Vos on Tuesday appointed a former labour court judge, Willem "
        "de Groot, to mediate between FNV Havens and the terminal operators of the port of Rotterdam.",
        "Both the union and the operators ECT and APM Terminals accepted the mediator. The dock strike, now "
        "in its second week, has stranded dozens of container ships and diverted cargo to Antwerp.",
        "De Groot said he would meet both sides separately before bringing them together. Marco Visser of "
        "the union said dock workers would stay out until a deal on automation and job guarantees was signed.",
    ]),
    ("German industry feels the Rotterdam strike", [
        "DUISBURG — German manufacturers said on Wednesday that the dock strike in the port of Rotterdam was "
        "delaying parts and raw materials, and that barges on the Rhine were waiting for cargo.",
        "Chemical and car companies in the Ruhr that import through Rotterdam said they were turning to "
        "Hamburg and Antwerp. The port of Duisburg said barge traffic from Rotterdam had fallen by half.",
        "The strike by FNV Havens over automation at the Maasvlakte terminals has entered its tenth day. "
        "Mediator Willem de Groot has met the union and the operators ECT and APM Terminals.",
    ]),
    ("European Commission watches Rotterdam strike's effect on supply chains", [
        "BRUSSELS — The European Commission said on Wednesday it was watching the effect of the dock strike "
        "in the port of Rotterdam on supply chains across Europe, but that the dispute was a Dutch matter.",
        "A spokeswoman said the Commission was in contact with the Dutch government and with the ports of "
        "Antwerp and Hamburg, which have taken cargo diverted from Rotterdam by Maersk and other lines.",
        "Economy Minister Hanneke Vos said the mediator appointed to end the strike between FNV Havens and the "
        "terminal operators was making progress.",
    ]),
    ("Truck drivers stranded at Rotterdam's closed terminals", [
        "ROTTERDAM — Hundreds of truck drivers were stranded near the Maasvlakte on Thursday, waiting to "
        "collect containers that have been stuck in the port of Rotterdam since the dock strike began.",
        "Transport companies said drivers from Poland and Romania had slept in their cabs for days. The Port "
        "of Rotterdam Authority opened parking areas and Ingrid Dekker, its chief executive, apologised to drivers.",
        "FNV Havens said it would let perishable goods through. The terminal operators ECT and APM Terminals "
        "said that was not enough to clear the backlog.",
    ]),
    ("Rotterdam strike costs put at half a billion euros", [
        "AMSTERDAM — The dock strike in the port of Rotterdam has cost the Dutch economy about 500 million "
        "euros, economists at ING estimated on Friday, as the stoppage entered its twelfth day.",
        "The losses fall on exporters, retailers and logistics companies, and on the Port of Rotterdam "
        "Authority, whose chief executive Ingrid Dekker warned that shipping lines might not all return.",
        "Economy Minister Hanneke Vos said she expected the mediator, Willem de Groot, to put a proposal on "
        "automation and job guarantees to FNV Havens and the terminal operators within days.",
    ]),
    ("Mediator's proposal offers Rotterdam dockers job guarantees until 2032", [
        "ROTTERDAM — The mediator in the Rotterdam dock strike, Willem de Groot, on Saturday proposed job "
        "guarantees for dock workers until 2032 and a joint committee on automation at the Maasvlakte.",
        "FNV Havens said it would put the proposal to its members. Marco Visser, the union spokesman, said it "
        "went a long way towards what dock workers had asked for.",
        "The terminal operators ECT and APM Terminals said they were studying the proposal. Economy Minister "
        "Hanneke Vos urged both sides to accept it and reopen the port of Rotterdam.",
    ]),
    ("Terminal operators accept mediator's plan for Rotterdam port", [
        "ROTTERDAM — The terminal operators ECT and APM Terminals on Sunday accepted the mediator's proposal "
        "to end the dock strike in the port of Rotterdam, leaving the decision to the union's members.",
        "The plan by Willem de Groot gives dock workers job guarantees until 2032 and a say on automation. "
        "FNV Havens will hold a vote among its members on Monday.",
        "Ingrid Dekker of the Port of Rotterdam Authority said ships waiting in the North Sea could be "
        "handled within days of a return to work. Maersk said it would bring its services back to Rotterdam.",
    ]),
    ("Rotterdam dockers vote on deal to end strike", [
        "ROTTERDAM — Dock workers in the port of Rotterdam voted on Monday on a deal to end their strike, "
        "as container ships waited at anchor and cargo piled up in Antwerp and Hamburg.",
        "FNV Havens said the result would be announced in the evening. Marco Visser, the union spokesman, said "
        "the deal brokered by mediator Willem de Groot protected jobs as automation comes to the Maasvlakte.",
        "Economy Minister Hanneke Vos said the government was ready to help clear the backlog. Maersk and "
        "Hapag-Lloyd said their ships would return to Rotterdam as soon as terminals reopened.",
    ]),
]

NEW_STORY_TITLE = "Rotterdam port strike ends as dock workers accept deal on automation"
NEW_STORY_TEXT = (
    "ROTTERDAM — Dock workers in the port of Rotterdam voted to accept a deal on automation and job "
    "guarantees on Monday evening, ending a strike that shut the largest port in Europe for two weeks. "
    "FNV Havens said four in five members backed the agreement brokered by the mediator Willem de Groot, "
    "which protects jobs until 2032 and gives the union a say on automation at the Maasvlakte terminals. "
    "Marco Visser, the union spokesman, said dock workers would return on Tuesday morning. "
    "The terminal operators ECT and APM Terminals welcomed the vote. Ingrid Dekker, chief executive of the "
    "Port of Rotterdam Authority, said the ships waiting in the North Sea would be handled within a week, "
    "and Maersk and Hapag-Lloyd said their services would return from Antwerp and Hamburg. "
    "Economy Minister Hanneke Vos thanked the mediator and said the strike had cost the Dutch economy dearly."
)
